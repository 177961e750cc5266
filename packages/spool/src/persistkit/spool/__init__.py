"""persistkit-spool (in progress)."""
