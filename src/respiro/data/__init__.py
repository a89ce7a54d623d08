"""The ICBHI database's files: formats, getting them, a synthetic stand-in, catalog, splits,
and the spectrogram dataset the model reads."""
