"""The plots that differ between a revision and the workspace, as PNG files and Markdown.

CI's pull-request comment (.github/workflows/ci.yml) shows the plots a change moved; a
comment cannot run the JavaScript of `dvc plots diff`'s page, so each changed plot is
rendered to a PNG (both revisions in it, as `dvc plots diff` draws them) and linked as a
Markdown image, which `cml comment create` uploads:

    pip install vl-convert-python==1.9.0.post1
    python scripts/plots_report.py main --out pr_plots >> report.md
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path
from typing import Any


def rows_by_revision(spec: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """A plot's data points per revision (the `rev` field removed)."""
    values = spec.get("data", {}).get("values", [])
    out: dict[str, list[dict[str, Any]]] = {}
    for row in values if isinstance(values, list) else []:
        out.setdefault(str(row.get("rev")), []).append({k: v for k, v in row.items() if k != "rev"})
    return out


def changed(spec: dict[str, Any]) -> bool:
    """True when the revisions' data differ, or only one revision has the plot."""
    per_rev = list(rows_by_revision(spec).values())
    return len(per_rev) != 2 or per_rev[0] != per_rev[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the revision to compare the workspace with (e.g. main)")
    parser.add_argument("--out", type=Path, default=Path("pr_plots"), help="folder for the PNG files")
    args = parser.parse_args(argv)
    import vl_convert

    shown = json.loads(
        subprocess.run(["dvc", "plots", "diff", args.rev, "--json"], check=True, capture_output=True, text=True).stdout
    )
    args.out.mkdir(parents=True, exist_ok=True)
    lines = []
    for plot_id, renders in shown.get("data", {}).items():
        for n, render in enumerate(renders):
            spec = render.get("content")
            if render.get("type") != "vega" or not isinstance(spec, dict) or not changed(spec):
                continue
            png = args.out / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', plot_id)}_{n}.png"
            png.write_bytes(vl_convert.vegalite_to_png(spec, scale=1.5))
            lines.append(f"![{plot_id}](./{png.as_posix()})")
    print("\n".join(lines) if lines else f"No plot differs from {args.rev}.")


if __name__ == "__main__":
    main()
