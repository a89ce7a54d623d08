"""Overlapping windows over a recording that has no cycle annotations.

Without an annotation nobody has said where a breath starts, so the recording is cut into
windows of about one cycle's length that overlap, and each window is classified as a cycle
would be (fit to the trained cycle length by the same padding). A window is not a cycle: it
can hold the end of one breath and the start of the next, and its row says `window`.
"""

from __future__ import annotations

import math

from src.audio.segment import CycleSpan

# ICBHI's annotated cycles last 0.2 to 16.2 s, 2.7 s on average: a 3 s window holds about
# one breath. Half-window hops put every event shorter than 1.5 s wholly inside some window.
DEFAULT_WINDOW_SECONDS = 3.0
DEFAULT_HOP_SECONDS = 1.5


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
