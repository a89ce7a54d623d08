"""The options every command that uses a trained model shares, stated once."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        type=Path,
        default=Path("models/model.pt"),
        help="checkpoint written by the train stage (default: %(default)s)",
    )


def add_output_option(parser: argparse.ArgumentParser, default: str, what: str) -> None:
    """`--out`, and the rule core.outputs.atomic_file enforces for it."""
    suffix = Path(default).suffix
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(default),
        help=(
            f"{what}; an existing {suffix} file is replaced, a folder, an input or any other file is "
            "refused and nothing is changed (default: %(default)s)"
        ),
    )
