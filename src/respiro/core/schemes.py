"""Class schemes: which classes a model learns, and how each database's own labels map onto them.

A scheme is data, chosen by name (`classes.scheme` in params.yaml): its class names in output
order (class 0 is the normal class every score measures specificity on), the scores it is
judged by, and for every database it supports a table from the database's own label (the
manifest's `source_label`) to a class name, or to None where the scheme leaves such an
event out. The checkpoint stores the class names, so a trained model carries its scheme.

- `four`: the paper's four ICBHI classes, Normal / Crackle / Wheeze / Both, scored by the
  ICBHI score. SPRSound's seven event types map onto them for cross-database runs: Crackle
  = fine + coarse crackle, Wheeze = wheeze + rhonchi + stridor, Both = wheeze+crackle.
- `event_binary`: SPRSound's event task 1-1, Normal / Adventitious (ICBHI maps onto it too:
  every abnormal cycle is adventitious), scored by SPRSound's SE, SP, AS and HS.
- `event_types`: SPRSound's event task 1-2, its seven event types, scored the same way;
  SPRSound only.

Here in core (not with the databases) because the params schema checks `loss.alpha`, one
weight per class, against the chosen scheme. Adding a scheme is adding one entry to SCHEMES.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

SchemeName = Literal["four", "event_binary", "event_types"]
ScoreKind = Literal["icbhi", "sprsound"]

# SPRSound's seven event types, as its JSON files spell them.
SPRSOUND_TYPES: tuple[str, ...] = (
    "Normal",
    "Rhonchi",
    "Wheeze",
    "Stridor",
    "Coarse Crackle",
    "Fine Crackle",
    "Wheeze+Crackle",
)
# ICBHI's own labels: a cycle's (crackles, wheezes) flags, named as the literature names them.
ICBHI_LABELS: tuple[str, ...] = ("Normal", "Crackle", "Wheeze", "Both")


@dataclass(frozen=True)
class ClassScheme:
    """`classes` in output order (index 0 the normal class); `scores` names the challenge
    scores (`icbhi`: SE, SP and their mean, the ICBHI score; `sprsound`: SE, SP, their mean
    AS and harmonic mean HS); `mapping[database][source_label]` is a class name or None (left
    out of this scheme)."""

    name: str
    classes: tuple[str, ...]
    scores: ScoreKind
    mapping: Mapping[str, Mapping[str, str | None]]

    def databases(self) -> tuple[str, ...]:
        return tuple(self.mapping)

    def class_of(self, database: str, source_label: str) -> int | None:
        """The class index of a `database` event labelled `source_label`, or None where this
        scheme leaves it out. KeyError for a database or label the scheme does not know."""
        name = self.mapping[database][source_label]
        return None if name is None else self.classes.index(name)


_SPRSOUND_TO_FOUR = {
    "Normal": "Normal",
    "Fine Crackle": "Crackle",
    "Coarse Crackle": "Crackle",
    "Wheeze": "Wheeze",
    "Rhonchi": "Wheeze",
    "Stridor": "Wheeze",
    "Wheeze+Crackle": "Both",
}

SCHEMES: dict[str, ClassScheme] = {
    "four": ClassScheme(
        name="four",
        classes=ICBHI_LABELS,
        scores="icbhi",
        mapping={"icbhi": {label: label for label in ICBHI_LABELS}, "sprsound": _SPRSOUND_TO_FOUR},
    ),
    "event_binary": ClassScheme(
        name="event_binary",
        classes=("Normal", "Adventitious"),
        scores="sprsound",
        mapping={
            "icbhi": {label: "Normal" if label == "Normal" else "Adventitious" for label in ICBHI_LABELS},
            "sprsound": {t: "Normal" if t == "Normal" else "Adventitious" for t in SPRSOUND_TYPES},
        },
    ),
    "event_types": ClassScheme(
        name="event_types",
        classes=SPRSOUND_TYPES,
        scores="sprsound",
        mapping={"sprsound": {t: t for t in SPRSOUND_TYPES}},
    ),
}


def get_scheme(name: str) -> ClassScheme:
    """The scheme called `name`; KeyError naming the known ones otherwise."""
    try:
        return SCHEMES[name]
    except KeyError:
        raise KeyError(f"unknown class scheme {name!r}; known: {', '.join(SCHEMES)}") from None


def scheme_of_classes(class_names: tuple[str, ...] | list[str]) -> ClassScheme | None:
    """The scheme whose classes are `class_names` (a checkpoint's), or None for none of ours."""
    return next((s for s in SCHEMES.values() if list(s.classes) == list(class_names)), None)
