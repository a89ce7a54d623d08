"""Reading recordings: the one place that opens audio files.

soundfile (libsndfile) reads every PCM width of the database (16, 24 and 32 bit) and float
WAVs; torchaudio's own loader now depends on TorchCodec, so it is kept out of the I/O path.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soundfile as sf

from respiro.core.errors import AudioReadError

# Integer PCM read as integers and scaled here: libsndfile's own float conversion is the
# same cast and the same power-of-two scale (24-bit samples come left-aligned in int32), so
# the float32 values are bit for bit libsndfile's, and the read takes about a quarter less
# CPU (the resample stage reads every recording). Other subtypes read as float32 directly.
INTEGER_READS: dict[str, tuple[str, float | None]] = {
    "PCM_16": ("int16", 2.0**-15),
    "PCM_24": ("int32", 2.0**-31),
    "PCM_32": ("int32", 2.0**-31),
}


def _riff_data_shortfall(path: Path) -> int:
    """Bytes missing from a WAV's data chunk (declared size minus bytes present), or 0.

    libsndfile reads a truncated file without complaint, returning fewer frames than the
    header promises; a recording cut off mid-transfer would then lose its last cycles
    without anyone noticing, so we compare the header with the file size ourselves.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return 0  # not RIFF/WAVE (e.g. RF64): leave it to libsndfile
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                return max(0, pos + 8 + chunk_size - size)
            pos += 8 + chunk_size + (chunk_size & 1)
    return 0


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    """Read a recording as float32 mono in [-1, 1] and its sample rate.

    Several channels are averaged to one. Returns `(samples (time,), rate)`. Raises
    AudioReadError for an unreadable, truncated or empty file, or one with NaN/Inf samples.
    """
    try:
        with sf.SoundFile(str(path)) as f:
            dtype, scale = INTEGER_READS.get(f.subtype, ("float32", None))
            data, rate = f.read(dtype=dtype, always_2d=True), f.samplerate
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioReadError(f"{path}: not a readable audio file ({err})") from err
    if scale is not None:
        data = data.astype(np.float32)
        data *= np.float32(scale)
    missing = _riff_data_shortfall(path)
    if missing:
        raise AudioReadError(f"{path}: truncated WAV, {missing} bytes of audio data missing")
    if data.shape[0] == 0:
        raise AudioReadError(f"{path}: no audio samples")
    samples = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if scale is None and not np.isfinite(samples).all():  # integers are always finite
        raise AudioReadError(f"{path}: contains NaN or infinite samples")
    return np.ascontiguousarray(samples), int(rate)
