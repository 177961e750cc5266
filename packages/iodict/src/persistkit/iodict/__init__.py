"""persistkit-iodict (in progress)."""
