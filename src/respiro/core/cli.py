"""How a stage script or command ends: an expected error, a full disk, Ctrl-C: one line each.

An expected error is a `UserError` (core/errors.py): a bad params.yaml value, a malformed
ICBHI file, a missing input, a failed download. It is printed as `<name>: error: <message>`
with exit code 1; a traceback would only hide its message. Any other exception is a bug and
keeps its traceback. Ctrl-C prints one line too: outputs are written to temporaries and
renamed into place only when complete, so an interrupted run leaves no half-written output.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import sys
from collections.abc import Callable, Iterator
from types import TracebackType

from respiro.core.config import load_params
from respiro.core.errors import UserError
from respiro.core.kernels import kernel_mode, use_kernels

INTERRUPTED_EXIT = 130  # what a shell reports for a process ended by SIGINT


def _one_line_interrupt(name: str, resume: str) -> Callable[..., None]:
    """sys.excepthook for Ctrl-C before `run_stage` (during a stage's imports): one line."""
    default = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, trace: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            print(
                f"\n{name}: interrupted while starting; no output was written; run `{resume}` to carry on",
                file=sys.stderr,
            )
        else:
            default(kind, value, trace)

    return hook


def parse_stage_args(name: str, doc: str | None, *, kernels: bool = False) -> None:
    """A stage's command line: none (params.yaml says everything). `--help` prints `doc` and
    exits, anything else is an error. Stage scripts call it first, under `__main__`, so that
    `--help` answers before they import torch and the rest; Ctrl-C from here on ends in one
    line. With `kernels` (the stages that run a network), the CPU kernel settings of
    `train.precision` are put in place before torch loads (core/kernels.py)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m stages.{name}",
        description=doc,
        epilog="Every setting is in params.yaml; `dvc repro` runs the stages in order.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args()
    sys.excepthook = _one_line_interrupt(name, "dvc repro")
    if kernels:
        with stage_errors(name):
            use_kernels(kernel_mode(load_params().train.precision))


@contextlib.contextmanager
def stage_errors(name: str, resume: str = "dvc repro", partial: str = "") -> Iterator[None]:
    """End an expected error, a full disk and Ctrl-C with one line (see `run_stage`)."""
    try:
        yield
    except UserError as err:
        message = " ".join(str(err).splitlines())
        print(f"{name}: error: {message}{f' ({partial})' if partial else ''}", file=sys.stderr)
        sys.exit(1)
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
        where = f" writing {err.filename}" if err.filename else ""
        print(
            f"{name}: error: no space left on the disk{where}; free some and run `{resume}` "
            f"(outputs are written whole or not at all){f' ({partial})' if partial else ''}",
            file=sys.stderr,
        )
        sys.exit(1)
    except KeyboardInterrupt:
        written = f"{partial}; no other output" if partial else "no output"
        print(
            f"\n{name}: interrupted; {written} was left half-written (earlier outputs are as they were, "
            f"or restored by `dvc checkout`); run `{resume}` to carry on",
            file=sys.stderr,
        )
        sys.exit(INTERRUPTED_EXIT)


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
    with stage_errors(name, resume, partial):
        main()
