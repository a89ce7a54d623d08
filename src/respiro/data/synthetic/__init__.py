"""A synthetic respiratory-sound corpus in the exact ICBHI 2017 file format (the offline default).

`generate_corpus(out_dir, SyntheticParams(...))` writes recordings, annotations and the split,
diagnosis and demographic files, byte-for-byte determined by the seed; `sounds` holds the
signal models it is made of.
"""
