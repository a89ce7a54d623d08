"""Class schemes: which classes a model learns and how it is scored.

A scheme is data, chosen by name (`classes.scheme` in params.yaml): its class names in output
order (class 0 is the normal class every score measures specificity on) and the scores it is
judged by. The checkpoint stores the class names, so a trained model carries its scheme. How
a database's own labels map onto a scheme's classes is the database's to say (each module
of respiro.data.databases declares its mapping into the schemes it supports).

- `four`: the paper's four ICBHI classes, Normal / Crackle / Wheeze / Both, scored by the
  ICBHI score.
- `event_binary`: SPRSound's event task 1-1, Normal / Adventitious, scored by SPRSound's SE,
  SP, AS and HS.
- `event_types`: SPRSound's event task 1-2, its seven event types, scored the same way.
- `own`: the user's own classes (`classes.own`, the normal class first), scored as the ICBHI
  score is: SE over every class but the first, SP over the first (own_scheme).

Here in core (not with the databases) because the params schema checks `loss.alpha`, one
weight per class, against the chosen scheme. Adding a scheme is adding one entry to SCHEMES.

A scheme also gives each class its colour (`colours`): the report's pictures and pages
(inference/figures.py, inference/templates/) draw a class in the same colour everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SchemeName = Literal["four", "event_binary", "event_types", "own"]
ScoreKind = Literal["icbhi", "sprsound"]

# The paper's four classes: a cycle's (crackles, wheezes) flags, named as the literature names them.
FOUR_CLASSES: tuple[str, ...] = ("Normal", "Crackle", "Wheeze", "Both")
# SPRSound's event task 1-2: its seven event types, as its JSON files spell them.
EVENT_TYPES: tuple[str, ...] = (
    "Normal",
    "Rhonchi",
    "Wheeze",
    "Stridor",
    "Coarse Crackle",
    "Fine Crackle",
    "Wheeze+Crackle",
)
# Okabe & Ito (2008): blue, orange, bluish green, reddish purple, vermillion, sky blue, yellow,
# black; they stay apart for readers with any of the common colour-vision deficiencies.
OKABE_ITO: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000")


@dataclass(frozen=True)
class ClassScheme:
    """`classes` in output order (index 0 the normal class); `scores` names the challenge
    scores (`icbhi`: SE, SP and their mean, the ICBHI score; `sprsound`: SE, SP, their mean
    AS and harmonic mean HS)."""

    name: str
    classes: tuple[str, ...]
    scores: ScoreKind

    @property
    def normal(self) -> str:
        """The normal class (index 0): what SP is measured on, and what a report does not flag."""
        return self.classes[0]

    @property
    def score_labels(self) -> dict[str, str]:
        """The challenge's scores in a page's words, by their key in the metrics."""
        return dict(SCORE_LABELS[self.scores])

    @property
    def challenge(self) -> str:
        """Whose definitions the scores follow, for a page's words."""
        return CHALLENGES[self.scores]

    @property
    def colours(self) -> tuple[str, ...]:
        """A colour per class, in class order: the Okabe-Ito palette by index (again from its
        start after eight classes)."""
        return tuple(OKABE_ITO[i % len(OKABE_ITO)] for i in range(len(self.classes)))


# The scores each kind of scheme is judged by (evaluation/metrics.py computes them).
SCORE_LABELS: dict[str, tuple[tuple[str, str], ...]] = {
    "icbhi": (("se", "SE"), ("sp", "SP"), ("icbhi_score", "ICBHI score")),
    "sprsound": (("se", "SE"), ("sp", "SP"), ("as", "AS"), ("hs", "HS")),
}
CHALLENGES = {"icbhi": "the ICBHI challenge's", "sprsound": "SPRSound's (BioCAS 2022)"}


SCHEMES: dict[str, ClassScheme] = {
    "four": ClassScheme("four", FOUR_CLASSES, "icbhi"),
    "event_binary": ClassScheme("event_binary", ("Normal", "Adventitious"), "sprsound"),
    "event_types": ClassScheme("event_types", EVENT_TYPES, "sprsound"),
}


def own_scheme(classes: tuple[str, ...]) -> ClassScheme:
    """The user's own classes in output order (index 0 the normal class), scored as ICBHI's."""
    return ClassScheme("own", tuple(classes), "icbhi")


def get_scheme(name: str) -> ClassScheme:
    """The scheme called `name`; KeyError naming the known ones otherwise."""
    try:
        return SCHEMES[name]
    except KeyError:
        raise KeyError(f"unknown class scheme {name!r}; known: {', '.join(SCHEMES)}") from None


def scheme_of_classes(class_names: tuple[str, ...] | list[str]) -> ClassScheme:
    """The scheme whose classes are `class_names` (a checkpoint's): a named one, else the
    user's own classes."""
    found = next((s for s in SCHEMES.values() if list(s.classes) == list(class_names)), None)
    return found or own_scheme(tuple(class_names))
