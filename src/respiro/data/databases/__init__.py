"""The databases the pipeline reads, by name (`data.database`): one module each.

Adding a database is one module here with a `Database` subclass (base.py says what it
declares) and its line in DATABASES; nothing else in the project names a database.
"""

from __future__ import annotations

from pathlib import Path

from respiro.core.config import Params
from respiro.core.errors import DatabaseFormatError, ParamsError
from respiro.data.databases.base import AnnotationRef, Database
from respiro.data.databases.events_csv import EventsCsv
from respiro.data.databases.icbhi import Icbhi
from respiro.data.databases.sprsound import Sprsound

DATABASES: dict[str, type[Database]] = {
    Icbhi.name: Icbhi,
    Sprsound.name: Sprsound,
    EventsCsv.name: EventsCsv,
}


def _registered(name: str) -> type[Database]:
    try:
        return DATABASES[name]
    except KeyError:
        raise ParamsError(f"data.database: unknown database {name!r}; known: {', '.join(DATABASES)}") from None


def get_database(name: str) -> Database:
    """The database called `name` with its default settings (for reading its files)."""
    return _registered(name)()


def database_of(params: Params) -> Database:
    """params.yaml's database (`data.database`) with its own group validated, after checking
    that every group params.yaml holds beyond the pipeline's is a database's and that the
    database maps onto `classes.scheme`. A ParamsError of one line names what is wrong."""
    stray = sorted(set(params.databases) - set(DATABASES))
    if stray:
        raise ParamsError(f"unknown group {stray[0]!r}: neither a params group of the pipeline nor a database's")
    for name, group in params.databases.items():  # every group checked, not only the one in use
        DATABASES[name].from_params(group)
    database = _registered(params.data.database).from_params(
        params.databases.get(params.data.database), params.classes.mapping
    )
    database.check_scheme(params.classes.class_scheme())
    return database


def find_annotation(audio: Path) -> tuple[Database, AnnotationRef] | None:
    """The annotation of the recording `audio` where one of the databases keeps it (and that
    database), or None."""
    for cls in DATABASES.values():
        database = cls()
        found = database.annotation_beside(audio)
        if found is not None:
            return database, found
    return None


def database_of_annotation(file: Path) -> Database:
    """The database whose annotation file `file` is, by its content."""
    for cls in DATABASES.values():
        if cls().recognises(file):
            return cls()
    raise DatabaseFormatError(f"{file}: not an annotation file of a known database ({', '.join(DATABASES)})")
