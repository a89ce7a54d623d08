"""The report's pictures, drawn with matplotlib and returned as PNG bytes.

As the field draws them (matplotlib `specgram`, librosa `specshow`): time in seconds and
frequency in Hz on the axes, a colour bar, the cycles or windows marked. Colours: viridis
for spectrograms, magma for the maps laid over them, and each class its scheme's colour
(ClassScheme.colours, the Okabe-Ito palette, which the pages' class keys use too).

The recording figure has a fixed layout (no tight bounding box), so that the page can put
its clickable spans and the playhead over the picture from the time axis' position
(`TimelineFigure.axis_left`, `axis_right`, fractions of the picture's width).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # files only, no display: set before pyplot is imported

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from PIL import Image  # noqa: E402

from respiro.core.schemes import OKABE_ITO, ClassScheme  # noqa: E402
from respiro.inference.recording import RecordingPrediction  # noqa: E402

DPI = 80
SCALE_LABELS = {"log": "ln power", "db": "dB", "linear": "power"}


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (fixed size: no tight bounding box); the figure is closed.

    Stored with a palette of 256 colours, as a GIF would: a spectrogram's noise defeats
    PNG's compression of full colour, and a colour map has 256 colours anyway; the page
    (five recordings) is then about a third the size.
    """
    fig.set_dpi(DPI)
    fig.canvas.draw()
    rgb = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])  # type: ignore[attr-defined]
    plt.close(fig)
    buffer = io.BytesIO()
    rgb.quantize(256, method=Image.Quantize.FASTOCTREE).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


@dataclass(frozen=True)
class Spectrum:
    """A spectrogram `(F, T)` with what places it: frame t is centred on `t * hop / rate` s."""

    values: np.ndarray
    rate: int
    hop: int
    scale: str  # stft.scale: log, db or linear

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """imshow's `(left, right, bottom, top)`: each frame and bin drawn centred on its time and frequency."""
        dt, df = self.hop / self.rate, self.rate / 2 / (self.values.shape[0] - 1)
        return (-dt / 2, (self.values.shape[1] - 0.5) * dt, -df / 2, (self.values.shape[0] - 0.5) * df)


@dataclass(frozen=True)
class TimelineFigure:
    png: bytes
    axis_left: float  # where time `start` lies, as a fraction of the picture's width
    axis_right: float  # where time `end` lies
    axis_top: float  # the spectrogram's top edge, as a fraction of the picture's height from its top
    axis_bottom: float  # its bottom edge
    plots_bottom: float  # the probability plot's bottom edge (the playhead spans all three rows)
    start: float  # seconds at axis_left
    end: float  # seconds at axis_right


@dataclass(frozen=True)
class MapsOfUnit:
    """What maps_figure draws of one cycle or window: the spectrogram the network saw, its
    attention view (None for an architecture without one) and Grad-CAM of the predicted
    class, both `(F, T)` on the spectrogram's grid; `audio_seconds` where the unit's own
    audio ends (the rest is padding to the model's cycle length); `title` above the three."""

    spectrum: Spectrum
    attention: np.ndarray | None
    cam: np.ndarray
    audio_seconds: float
    title: str


def _draw_spectrum(ax: plt.Axes, spectrum: Spectrum, cmap: str = "viridis") -> matplotlib.image.AxesImage:
    image = ax.imshow(
        spectrum.values, origin="lower", aspect="auto", cmap=cmap, extent=spectrum.extent, interpolation="nearest"
    )
    ax.set_ylabel("Frequency (Hz)")
    return image


def timeline_figure(
    spectrum: Spectrum, duration: float, result: RecordingPrediction, scheme: ClassScheme
) -> TimelineFigure:
    """One recording: its spectrogram with the cycles (or windows) of `result` marked, a strip
    of the annotated and predicted class of each, and each class' probability over time (drawn
    at each unit's middle), all on one time axis of `duration` s; classes in `scheme`'s colours."""
    starts, ends, annotated, unit = result.starts, result.ends, result.annotated_classes, result.unit
    probabilities, colours = result.probabilities, scheme.colours
    fig = plt.figure(figsize=(12, 6.2))
    grid = fig.add_gridspec(
        3, 2, height_ratios=(3.2, 0.9, 2), width_ratios=(60, 1), left=0.07, right=0.92, top=0.95, bottom=0.09
    )
    grid.update(hspace=0.12, wspace=0.02)
    ax_spec = fig.add_subplot(grid[0, 0])
    ax_strip = fig.add_subplot(grid[1, 0], sharex=ax_spec)
    ax_prob = fig.add_subplot(grid[2, 0], sharex=ax_spec)
    image = _draw_spectrum(ax_spec, spectrum)
    fig.colorbar(image, cax=fig.add_subplot(grid[0, 1]), label=SCALE_LABELS[spectrum.scale])
    predicted = probabilities.argmax(axis=1)
    for n, (start, end) in enumerate(zip(starts, ends)):
        # Cycles touch and windows overlap: alternate two heights so each boundary stays visible.
        level = n % 2
        ax_spec.axvline(start, color="white", lw=0.8, alpha=0.8)
        ax_spec.text(
            (start + end) / 2,
            0.97 - 0.07 * level,
            str(n + 1),
            transform=ax_spec.get_xaxis_transform(),
            ha="center",
            va="top",
            color="white",
            fontsize=8,
        )
        lanes = [(1.0, predicted[n])] + ([] if annotated[n] is None else [(0.0, annotated[n])])
        for y, cls in lanes:
            height = 0.45 if unit == "cycle" else 0.22
            bottom = y + (0.0 if unit == "cycle" else 0.23 * level) + 0.03
            ax_strip.add_patch(
                Rectangle((start, bottom), end - start, height, color=colours[int(cls)], ec="white", lw=0.5)
            )
    has_annotation = any(a is not None for a in annotated)
    ax_strip.set_ylim(0 if has_annotation else 0.95, 1.55)
    ax_strip.set_yticks([0.25, 1.25] if has_annotation else [1.25], ["annotated", "predicted"][not has_annotation :])
    middles = (np.asarray(starts) + np.asarray(ends)) / 2
    for c, name in enumerate(scheme.classes):
        ax_prob.plot(middles, probabilities[:, c], "o-", color=colours[c], label=name, ms=3, lw=1.5)
    ax_prob.set_ylim(-0.02, 1.02)
    ax_prob.set_ylabel("Probability")
    ax_prob.set_xlabel("Time (s)")
    ax_prob.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    ax_prob.grid(alpha=0.3)
    ax_spec.set_xlim(0, duration)
    for ax in (ax_spec, ax_strip):
        ax.tick_params(labelbottom=False)
    box = ax_spec.get_position()
    lowest = ax_prob.get_position()
    return TimelineFigure(png_bytes(fig), box.x0, box.x1, 1 - box.y1, 1 - box.y0, 1 - lowest.y0, 0.0, duration)


def maps_figure(unit: MapsOfUnit, attention_label: str, no_attention: str) -> bytes:
    """What the network saw of one cycle or window (its fixed-length spectrogram), its
    attention view (`attention_label`, e.g. CBAM's spatial attention of the last block; a
    grey panel saying `no_attention` when None) and Grad-CAM of the predicted class, both
    laid over the spectrogram; a dashed line where the unit's own audio ends and the padding
    to the model's cycle length begins."""
    spectrum, audio_seconds = unit.spectrum, unit.audio_seconds
    panels = [("Spectrogram the model saw", None), (attention_label, unit.attention)]
    panels.append(("Grad-CAM of the predicted class", unit.cam))
    fig, axes = plt.subplots(1, 3, figsize=(12, 2.6), sharey=True)
    fig.subplots_adjust(left=0.06, right=0.97, top=0.8, bottom=0.17, wspace=0.08)
    fig.suptitle(unit.title, fontsize=10)
    end = spectrum.extent[1]
    for ax, (label, overlay) in zip(axes, panels):
        if overlay is None and label == attention_label:
            _draw_spectrum(ax, spectrum, cmap="gray")
            ax.text(0.5, 0.5, no_attention, transform=ax.transAxes, ha="center", color="white")
        elif overlay is None:
            _draw_spectrum(ax, spectrum)
        else:
            _draw_spectrum(ax, spectrum, cmap="gray")
            shown = ax.imshow(
                overlay,
                origin="lower",
                aspect="auto",
                cmap="magma",
                alpha=0.55,
                extent=spectrum.extent,
                vmin=0,
                vmax=1,
                interpolation="nearest",
            )
            fig.colorbar(shown, ax=ax, pad=0.01, fraction=0.05)
        if audio_seconds < end:
            ax.axvline(audio_seconds, color="white", ls="--", lw=1)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("Time in the unit (s)")
    for ax in axes[1:]:
        ax.set_ylabel("")
    return png_bytes(fig)


def group_scores_figure(
    scores: Mapping[str, Mapping[str, float | None]], labels: Mapping[str, str], title: str, what: str
) -> bytes:
    """The scheme's scores (`labels`: key -> name, e.g. SE, SP, ICBHI score) per group (device,
    patient): one bar each, a group per column; a score with an empty denominator has no bar
    but `n/a` where it would stand."""
    names = list(scores)
    keys = tuple(labels.items())
    # At least 5 inches, so that a few groups leave room for the legend on the right.
    fig, ax = plt.subplots(figsize=(min(max(5, 2.5 + 0.45 * len(names)), 14), 3.2))
    fig.subplots_adjust(left=0.6 / fig.get_figwidth(), right=1 - 1.3 / fig.get_figwidth(), bottom=0.28, top=0.88)
    width = 0.8 / len(keys)
    x = np.arange(len(names))
    for k, (key, label) in enumerate(keys):
        values = [scores[n][key] for n in names]
        shown = [(i, v) for i, v in enumerate(values) if v is not None]
        ax.bar(
            [x[i] + (k - (len(keys) - 1) / 2) * width for i, _ in shown],
            [v for _, v in shown],
            width,
            color=OKABE_ITO[k],  # the scores' own colours, in the classes' palette
            label=label,
        )
        for i, v in enumerate(values):  # an undefined score must not read as a bar of 0
            if v is None:
                ax.text(
                    x[i] + (k - (len(keys) - 1) / 2) * width,
                    0.02,
                    "n/a",
                    rotation=90,
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    ticks = [f"{n}\n({scores[n].get('cycles', '?')})" for n in names]
    ax.set_xticks(x, ticks, rotation=90 if len(names) > 8 else 0, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("Score")
    ax.set_xlabel(f"{what} (test cycles)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return png_bytes(fig)
