"""Errors a user can act on, in one leaf module that every layer may import.

Each subclasses `UserError`: the stage and command runner (core/cli.py) prints one of these
as one line naming the file, key or option, and exits 1. Any other exception is a bug and
keeps its traceback. The second base keeps each error catchable as what it is (a bad value
is a ValueError, a missing input a FileNotFoundError).
"""

from __future__ import annotations


class UserError(Exception):
    """An expected failure whose message tells the user what to change."""


class ParamsError(UserError, ValueError):
    """An invalid value in params.yaml (or a checkpoint's stored params); names the key."""


class OptionError(UserError, ValueError):
    """An invalid command-line option of a command; names the option."""


class MissingInputError(UserError, FileNotFoundError):
    """A file or folder the user pointed at (or the pipeline should have made) is absent."""


class IcbhiFormatError(UserError, ValueError):
    """A file that breaks the ICBHI format; the message names the file (and line)."""


class DatabaseFormatError(UserError, ValueError):
    """A file that breaks its database's format (SPRSound's JSON, ...); names the file and entry."""


class AudioReadError(UserError, ValueError):
    """A recording that cannot be decoded or is unusable; names the file."""


class DownloadError(UserError, RuntimeError):
    """A download that failed or gave the wrong bytes."""


class ArchiveError(UserError, ValueError):
    """A zip archive that is not the database or is unsafe to extract."""


class CheckpointError(UserError, ValueError):
    """A file that is not a usable checkpoint of this project; names the file."""


class PretrainedWeightsError(UserError, ValueError):
    """ImageNet weights that are absent, fail their hash check or do not fit; names the file."""


class DamagedArtifactError(UserError, ValueError):
    """A pipeline output that is damaged or out of step with another; says which stage to rerun."""


class OutputPathError(UserError, ValueError):
    """An output path that would overwrite something that is not an earlier output."""


class StageError(UserError, RuntimeError):
    """An expected failure of a stage or command that no more specific type describes."""
