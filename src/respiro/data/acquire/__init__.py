"""Getting the raw ICBHI folder: download (resumable, verified), safe zip extraction, and the
choice of source (`data.source`) that fills data/raw.

`http` and `archive` use the standard library only; `source.materialize_raw` is what the
download stage calls.
"""
