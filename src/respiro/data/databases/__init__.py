"""The databases the pipeline reads, by name (`data.database`): one module each.

Adding a database: a module here with a `Database` subclass (base.py says what it provides),
its entry in DATABASES, its name in `DatabaseName` (core/config.py), and its labels in the
class schemes that map it (core/schemes.py).
"""

from __future__ import annotations

from pathlib import Path

from respiro.core.errors import DatabaseFormatError
from respiro.data.databases.base import Database
from respiro.data.databases.icbhi import Icbhi
from respiro.data.databases.sprsound import Sprsound

DATABASES: dict[str, type[Database]] = {"icbhi": Icbhi, "sprsound": Sprsound}


ANNOTATION_SUFFIXES: tuple[str, ...] = tuple(db.annotation_suffix for db in DATABASES.values())


def database_of_annotation(path: Path) -> Database:
    """The database whose annotation files end like `path` (`.txt` ICBHI, `.json` SPRSound)."""
    for db in DATABASES.values():
        if path.suffix.lower() == db.annotation_suffix:
            return db()
    raise DatabaseFormatError(
        f"{path}: not an annotation file of a known database (suffixes {', '.join(ANNOTATION_SUFFIXES)})"
    )


def get_database(name: str) -> Database:
    """The database called `name` (data.database)."""
    try:
        return DATABASES[name]()
    except KeyError:
        raise KeyError(f"unknown database {name!r}; known: {', '.join(DATABASES)}") from None
