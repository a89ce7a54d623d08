"""A synthetic respiratory-sound corpus in the exact ICBHI 2017 file format (the offline default).

population.py  the clinical picture: diagnoses, devices, formats, levels, locations
plan.py        patients, recordings, cycles and the split, drawn before any audio
sounds.py      the signal models: breath noise, crackles, wheezes, artefacts
render.py      one planned recording as audio
corpus.py      `generate_corpus(out_dir, SyntheticParams(...))`: plan, render and write the
               recordings, annotations and metadata files, byte for byte by the seed
"""
