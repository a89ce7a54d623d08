"""The databases the pipeline reads, by name (`data.database`): one module each.

Adding a database: a module here with a `Database` subclass (base.py says what it provides),
its entry in DATABASES, its name in `DatabaseName` (core/config.py), and its labels in the
class schemes that map it (core/schemes.py).
"""

from __future__ import annotations

from respiro.data.databases.base import Database
from respiro.data.databases.icbhi import Icbhi
from respiro.data.databases.sprsound import Sprsound

DATABASES: dict[str, type[Database]] = {"icbhi": Icbhi, "sprsound": Sprsound}


def get_database(name: str) -> Database:
    """The database called `name` (data.database)."""
    try:
        return DATABASES[name]()
    except KeyError:
        raise KeyError(f"unknown database {name!r}; known: {', '.join(DATABASES)}") from None
