"""`respiro COMMAND ...` (or `python -m respiro COMMAND ...`): the commands beside `dvc repro`.

Each command module is imported only when it runs, so `respiro --help` answers at once.
"""

from __future__ import annotations

import importlib
import sys
from importlib import metadata

COMMANDS = {
    "predict": "classify recordings with a trained checkpoint (one CSV row per cycle or window)",
    "export": "export a checkpoint to ONNX, checked against PyTorch",
    "table3": "the paper's Table 3 grid as DVC experiments, and its report",
    "crossdb": "score a model trained on one database on another's test parts (docs/sprsound.md)",
    "queue": "run DVC's experiment queue on a Ray cluster (docs/cluster.md)",
}


def version() -> str:
    """`respiro X (torch Y, dvc Z)`: what a paper citing a run names. From the installed
    packages' metadata, so it answers without importing them."""
    found = {name: metadata.version(name) for name in ("respiro", "torch", "dvc")}
    return f"respiro {found['respiro']} (torch {found['torch']}, dvc {found['dvc']})"


def usage() -> str:
    lines = ["usage: respiro [--version] COMMAND [--help] ...", "", "commands:"]
    lines += [f"  {name:<9} {text}" for name, text in COMMANDS.items()]
    lines += ["", "The pipeline itself runs with `dvc repro` (stages in stages/, settings in params.yaml)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return
    if argv[0] in ("-V", "--version"):
        print(version())
        return
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"{usage()}\n\nrespiro: error: unknown command {name!r}", file=sys.stderr)
        raise SystemExit(2)
    importlib.import_module(f"respiro.commands.{name}").run(rest)


if __name__ == "__main__":
    main()
