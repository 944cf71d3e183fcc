"""The built-in attribution models, registered exactly as a third-party plugin registers its own."""
