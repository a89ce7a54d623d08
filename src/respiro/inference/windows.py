"""Overlapping windows over a recording that has no cycle annotations.

Without an annotation nobody has said where a breath starts, so the recording is cut into
windows of about one cycle's length that overlap, and each window is classified as a cycle
would be (fit to the trained cycle length by the same padding). A window is not a cycle: it
can hold the end of one breath and the start of the next, and its row says `window`.
"""

from __future__ import annotations

import math

from respiro.audio.segment import CycleSpan



def default_window(cycle_seconds: float, window_s: float | None, hop_s: float | None) -> tuple[float, float]:
    """The window and hop used when the user gives none: a window as long as the model's
    typical training cycle (the median, stored in the checkpoint: about 2.7 s on ICBHI),
    so that a window holds about one breath, as the cycles the model learnt from did; a
    hop of half the window, so that every event shorter than half a window lies wholly
    inside some window."""
    window = window_s if window_s is not None else round(cycle_seconds, 2)
    return window, hop_s if hop_s is not None else window / 2


def window_spans(length: int, rate: int, window_s: float, hop_s: float) -> list[CycleSpan]:
    """Windows of `window_s` seconds every `hop_s` over `length` samples at `rate`.

    They start at 0 and cover the whole recording: the last one ends at the end of the audio
    and may be shorter (at least `window_s - hop_s`), as may the only window of a recording
    shorter than `window_s`. `clipped` marks such a shortened window.
    """
    if window_s <= 0 or hop_s <= 0:
        raise ValueError(f"window and hop must be > 0 seconds; got {window_s} and {hop_s}")
    if length <= 0:
        return []
    window = max(1, int(round(window_s * rate)))
    hop = max(1, int(round(hop_s * rate)))
    count = 1 if length <= window else math.ceil((length - window) / hop) + 1
    spans = []
    for i in range(count):
        start = i * hop
        end = min(start + window, length)
        spans.append(CycleSpan(start, end, end - start < window))
    return spans
