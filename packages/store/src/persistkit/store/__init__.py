"""persistkit-store (in progress)."""
