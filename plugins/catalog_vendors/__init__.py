"""Designer-vendor catalog feeds (product data and images)."""
