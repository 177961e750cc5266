"""persistkit-tracker (in progress)."""
