"""Overlapping windows over a recording that has no cycle annotations.

Without an annotation nobody has said where a breath starts, so the recording is cut into
windows of about one cycle's length that overlap, and each window is classified as a cycle
would be (fit to the trained cycle length by the same padding). A window is not a cycle: it
can hold the end of one breath and the start of the next, and its row says `window`.

Bounds (`check_windows`), all in seconds at the model's sample rate:
- window >= one STFT window (`stft.n_fft` samples): a shorter window holds no full frame,
  and its spectrogram would be padding;
- hop >= one STFT window too: windows closer together repeat nearly the same frames, and
  the count (time and output rows) grows as 1/hop without telling the model anything new;
- hop <= the part of a window the model sees (the window, at most the trained cycle
  length: a longer window is cropped to its first `segment.duration` seconds), or audio
  between windows is never classified; `allow_gaps` accepts that knowingly.

Windows are made lazily (`iter_window_spans`) and classified a batch at a time, so memory
stays that of the recording and one batch, whatever the recording's length and the hop.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

from respiro.audio.chain import AudioChain
from respiro.audio.segment import CycleSpan
from respiro.core.errors import OptionError

T = TypeVar("T")


def default_window(cycle_seconds: float, window_s: float | None, hop_s: float | None) -> tuple[float, float]:
    """The window and hop used when the user gives none: a window as long as the model's
    typical training cycle (the median, stored in the checkpoint: about 2.7 s on ICBHI),
    so that a window holds about one breath, as the cycles the model learnt from did; a
    hop of half the window, so that every event shorter than half a window lies wholly
    inside some window."""
    window = window_s if window_s is not None else round(cycle_seconds, 2)
    return window, hop_s if hop_s is not None else window / 2


def min_window_seconds(chain: AudioChain) -> float:
    """The shortest window and hop a model's chain can use: one STFT window (n_fft samples)."""
    return chain.stft.n_fft / chain.rate


def check_windows(chain: AudioChain, window_s: float, hop_s: float, allow_gaps: bool = False) -> None:
    """Raise OptionError naming `--window` or `--hop` when they break the bounds of the
    module docstring for `chain` (finite values are checked where the options are read)."""
    low = min_window_seconds(chain)
    why = f"one STFT window of the model: stft.n_fft = {chain.stft.n_fft} samples at {chain.rate} Hz"
    for option, value in (("--window", window_s), ("--hop", hop_s)):
        if not value >= low - 1e-9:  # `not >=` also catches NaN
            raise OptionError(f"{option} {value:g}: must be at least {low:g} s ({why})")
    seen = min(window_s, chain.segment.duration)
    if hop_s > seen + 1e-9 and not allow_gaps:
        what = (
            "the window"
            if window_s <= chain.segment.duration
            else f"the {chain.segment.duration:g} s of a window the model sees (its segment.duration)"
        )
        raise OptionError(
            f"--hop {hop_s:g}: longer than {what}, so {hop_s - seen:g} s of audio after each window would never be "
            f"classified; give a shorter --hop, or --allow-gaps to accept the gaps"
        )


def window_count(length: int, rate: int, window_s: float, hop_s: float) -> int:
    """How many windows `iter_window_spans` makes."""
    if length <= 0:
        return 0
    window = max(1, round(window_s * rate))
    hop = max(1, round(hop_s * rate))
    if length <= window:
        return 1
    # Enough windows that the last one reaches the end, but none starting after it (with
    # gaps, hop > window, the first bound alone would add windows past the audio).
    return min(math.ceil((length - window) / hop) + 1, math.ceil(length / hop))


def iter_window_spans(length: int, rate: int, window_s: float, hop_s: float) -> Iterator[CycleSpan]:
    """Windows of `window_s` seconds every `hop_s` over `length` samples at `rate`, one at a time.

    They start at 0 and cover the whole recording: the last one ends at the end of the audio
    and may be shorter (at least `window_s - hop_s`), as may the only window of a recording
    shorter than `window_s`. `clipped` marks such a shortened window.
    """
    if not (math.isfinite(window_s) and math.isfinite(hop_s) and window_s > 0 and hop_s > 0):
        raise ValueError(f"window and hop must be finite and > 0 seconds; got {window_s} and {hop_s}")
    window = max(1, round(window_s * rate))
    hop = max(1, round(hop_s * rate))
    for i in range(window_count(length, rate, window_s, hop_s)):
        start = i * hop
        end = min(start + window, length)
        yield CycleSpan(start, end, end - start < window)


def window_spans(length: int, rate: int, window_s: float, hop_s: float) -> list[CycleSpan]:
    """All of `iter_window_spans` as a list (for tests and small recordings)."""
    return list(iter_window_spans(length, rate, window_s, hop_s))


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last may be shorter)."""
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch
