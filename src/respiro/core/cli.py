"""How a stage script or command ends: an expected error as one line, Ctrl-C as one line.

An expected error is a `UserError` (core/errors.py): a bad params.yaml value, a malformed
ICBHI file, a missing input, a failed download. It is printed as `<name>: error: <message>`
with exit code 1; a traceback would only hide its message. Any other exception is a bug and
keeps its traceback. Ctrl-C prints one line too: outputs are written to temporaries and
renamed into place only when complete, so an interrupted run leaves no half-written output.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from respiro.core.errors import UserError

INTERRUPTED_EXIT = 130  # what a shell reports for a process ended by SIGINT


def parse_stage_args(name: str, doc: str | None) -> None:
    """A stage's command line: none (params.yaml says everything). `--help` prints `doc` and
    exits, anything else is an error. Stage scripts call it first, under `__main__`, so that
    `--help` answers before they import torch and the rest."""
    parser = argparse.ArgumentParser(
        prog=f"python -m stages.{name}",
        description=doc,
        epilog="Every setting is in params.yaml; `dvc repro` runs the stages in order.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args()


def run_stage(
    name: str, main: Callable[[], None], doc: str | None = None, resume: str = "dvc repro", partial: str = ""
) -> None:
    """Run a stage's (or a command's) `main`, ending expected errors and Ctrl-C with one line.

    With `doc` (a stage script's docstring), the command line is parsed first: a stage takes
    no arguments (params.yaml says everything), so `--help` prints what it does and exits,
    and anything else is an error, rather than a stage that runs when asked for help.
    `resume` is what the user runs to carry on after an interrupt. `partial` names an output
    written as the stage goes (the train stage's DVCLive curves) and how to restore it; both
    one-line endings say it.
    """
    if doc is not None:
        parse_stage_args(name, doc)
    try:
        main()
    except UserError as err:
        message = " ".join(str(err).splitlines())
        print(f"{name}: error: {message}{f' ({partial})' if partial else ''}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        written = f"{partial}; no other output" if partial else "no output"
        print(
            f"\n{name}: interrupted; {written} was left half-written (earlier outputs are as they were, "
            f"or restored by `dvc checkout`); run `{resume}` to carry on",
            file=sys.stderr,
        )
        sys.exit(INTERRUPTED_EXIT)
