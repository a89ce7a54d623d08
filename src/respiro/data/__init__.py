"""The databases' files (databases/: one module per database, behind one interface; icbhi.py:
ICBHI's formats), getting them, synthetic stand-ins, the manifest rows, splits, and the
spectrogram dataset the model reads."""
