"""Attribution: which outreach earned each sale, by every registered model, kept current from the
change feed; and the performance reports built on those credit rows."""
