"""Signal processing of the audio stages: pure functions on numpy arrays, plus I/O helpers."""
