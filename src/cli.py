"""How a stage script ends: expected errors as one line on stderr and exit code 1.

An expected error is one the user can act on (a bad params.yaml value, a malformed ICBHI
file, a missing path, a failed download): a traceback would only hide its message. Any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from src.acquire.archive import ArchiveError
from src.acquire.http import DownloadError
from src.icbhi import IcbhiFormatError
from src.outputs import OutputPathError
from src.params import ParamsError


class StageError(RuntimeError):
    """An expected failure of a stage that no more specific error type describes."""


EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    ParamsError,
    IcbhiFormatError,
    FileNotFoundError,
    DownloadError,
    ArchiveError,
    StageError,
    OutputPathError,
)


def run_stage(name: str, main: Callable[[], None], doc: str | None = None) -> None:
    """Run a stage's `main`; on an expected error print `<name>: error: <message>` and exit 1.

    With `doc` (a stage script's docstring), the command line is parsed first: a stage takes
    no arguments (params.yaml says everything), so `--help` prints what it does and exits,
    and anything else is an error, rather than a stage that runs when asked for help.
    """
    if doc is not None:
        parser = argparse.ArgumentParser(
            prog=f"python -m stages.{name}",
            description=doc,
            epilog="Every setting is in params.yaml; `dvc repro` runs the stages in order.",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.parse_args()
    try:
        main()
    except EXPECTED_ERRORS as err:
        message = " ".join(str(err).splitlines())
        print(f"{name}: error: {message}", file=sys.stderr)
        sys.exit(1)
