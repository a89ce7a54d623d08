"""Write .dvc/plots/offline.html: the page `dvc plots show` fills, with Vega built in.

DVC's default page loads Vega, Vega-Lite and Vega-Embed from a CDN, so on a machine without
internet (the norm on hospital networks) every plot stays blank. `.dvc/config` points
`plots.html_template` at this page instead: the same three libraries inlined as one script
(from the `vl-convert-python` package, which bundles them), so `dvc plots show` and
`dvc plots diff` draw everything offline. DVC fills `{plot_divs}`; the page never names
`{scripts}`, DVC's slot for the CDN tags.

The page is committed because a fresh, offline clone must draw plots with nothing to
install or run first; it is the one generated file in git, regenerated only by this script:

    pip install vl-convert-python==1.9.0.post1
    python scripts/offline_plots_page.py          # rewrites .dvc/plots/offline.html
    python scripts/offline_plots_page.py --check  # exit 1 if the committed page differs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / ".dvc" / "plots" / "offline.html"
# DVC's own templates are Vega-Lite 5 specs ($schema .../vega-lite/v5.json).
VEGA_LITE = "5.21"
PINNED = "vl-convert-python==1.9.0.post1"

HEAD = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>DVC plots (offline)</title>
<!-- Vega {vega}, Vega-Lite {vega_lite}, Vega-Embed {embed} (BSD-3-Clause, https://vega.github.io),
     bundled by {pinned}; written by scripts/offline_plots_page.py. Do not edit by hand. -->
<style>
body {{ font-family: sans-serif; margin: 16px; }}
table {{ border-spacing: 15px; }}
</style>
<script>
"""

TAIL = """
</script>
</head>
<body>
{plot_divs}
</body>
</html>
"""


def build_page() -> str:
    """The page's text: the bundle between a head that says what it is and DVC's slot."""
    try:
        import vl_convert
    except ImportError:
        raise SystemExit(f"offline_plots_page: needs {PINNED} (pip install {PINNED})") from None
    bundle = vl_convert.javascript_bundle(vl_version=VEGA_LITE)
    if "</script" in bundle:
        raise SystemExit("offline_plots_page: the bundle contains '</script'; it cannot be inlined as is")
    head = HEAD.format(
        vega=vl_convert.get_vega_version(),
        vega_lite=VEGA_LITE,
        embed=vl_convert.get_vega_embed_version(),
        pinned=PINNED,
    )
    return head + bundle + TAIL


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed page instead of writing it")
    args = parser.parse_args(argv)
    page = build_page()
    if args.check:
        same = PAGE.is_file() and PAGE.read_text(encoding="utf-8") == page
        print(
            f"offline_plots_page: {PAGE.relative_to(ROOT)} {'is up to date' if same else 'differs from the generated page'}"
        )
        sys.exit(0 if same else 1)
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(page, encoding="utf-8")
    print(f"offline_plots_page: wrote {PAGE.relative_to(ROOT)} ({len(page) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
