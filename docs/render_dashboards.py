"""Draw each Grafana dashboard's layout as an SVG picture for the manual (docs/dashboards.md).

    python docs/render_dashboards.py            # rewrite docs/images/dashboards/*.svg
    python docs/render_dashboards.py --check    # exit 1 when a picture differs from its dashboard's JSON

No Grafana server runs here, so the picture is drawn from grafana/dashboards/*.json alone: each
panel at its gridPos (Grafana's grid is 24 columns wide, in rows 30 px high), with its title, its
type and the metrics its queries read; each row as a band. It shows where things are and what they
read, never data. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "grafana" / "dashboards"
OUT = Path(__file__).resolve().parent / "images" / "dashboards"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # docgen, beside this file

from docgen.files import sync  # noqa: E402

COLUMN = 50  # px per grid column: 24 columns make 1200 px
ROW = 30  # px per grid row, as Grafana draws them
GAP = 4
HEAD = 48  # the dashboard's title above the grid
CHAR = 0.62  # width of an average sans-serif character, bold included, per px of font size
METRIC = re.compile(r"\bcallmeter_[a-zA-Z0-9_:]+")
SUFFIXES = ("_bucket", "_count", "_sum")
FILL = {"stat": "#e8f1fb", "timeseries": "#eaf6ec", "table": "#fdf3e3", "state-timeline": "#f3ebfa"}


def _fit(text: str, width: float, size: int) -> str:
    """`text` cut with an ellipsis to what fits in `width` px at font size `size`."""
    room = max(1, int(width / (CHAR * size)))
    return text if len(text) <= room else text[: room - 1].rstrip() + "…"


def metrics_of(panel: dict[str, Any]) -> list[str]:
    """The callmeter_* metrics the panel's queries read, in order, without histogram suffixes."""
    seen: dict[str, None] = {}
    for target in panel.get("targets") or []:
        for name in METRIC.findall(str(target.get("expr", ""))):
            for suffix in SUFFIXES:
                name = name.removesuffix(suffix)
            seen[name] = None
    return list(seen)


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, the panels of collapsed rows included (they sit below their row)."""
    out = []
    for panel in dashboard.get("panels") or []:
        out.append(panel)
        out.extend(panel.get("panels") or [])
    return out


def _text(x: float, y: float, text: str, *, size: int = 12, weight: str = "normal", fill: str = "#1f2933",
          anchor: str = "start") -> str:
    return (f'<text x="{x:g}" y="{y:g}" font-size="{size}" font-weight="{weight}" fill="{fill}" '
            f'text-anchor="{anchor}">{escape(text)}</text>')


def render(dashboard: dict[str, Any], source: str) -> str:
    panels = _panels(dashboard)
    bottom = max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels), default=0)
    width, height = 24 * COLUMN, HEAD + bottom * ROW + GAP
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" role="img">',
        f"<title>{escape(dashboard.get('title', source))}: panel layout</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        _text(GAP, 22, dashboard.get("title", source), size=18, weight="bold"),
        _text(GAP, 40, f"Layout of {source}, drawn from its JSON: each panel's title, type and the metrics "
                       "it reads. No data.", size=11, fill="#52606d"),
    ]
    for panel in panels:
        grid = panel["gridPos"]
        x, y = grid["x"] * COLUMN + GAP / 2, HEAD + grid["y"] * ROW + GAP / 2
        w, h = grid["w"] * COLUMN - GAP, grid["h"] * ROW - GAP
        title = panel.get("title", "")
        if panel.get("type") == "row":
            parts.append(f'<rect x="{x:g}" y="{y:g}" width="{w:g}" height="{h:g}" fill="#334e68" rx="3"/>')
            collapsed = " (collapsed)" if panel.get("collapsed") else ""
            parts.append(_text(x + 8, y + h / 2 + 4.5, f"{title}{collapsed}", size=13, weight="bold",
                               fill="#ffffff"))
            continue
        kind = str(panel.get("type", "panel"))
        parts.append(f'<rect x="{x:g}" y="{y:g}" width="{w:g}" height="{h:g}" rx="4" '
                     f'fill="{FILL.get(kind, "#f0f4f8")}" stroke="#9aa5b1"/>')
        parts.append(_text(x + 8, y + 18, _fit(title, w - 16, 13), size=13, weight="bold"))
        parts.append(_text(x + 8, y + 34, _fit(kind, w - 16, 11), size=11, fill="#52606d"))
        lines = int((h - 44) // 14)
        names = metrics_of(panel)
        shown = names[:lines] if len(names) <= lines else [*names[: lines - 1], f"and {len(names) - lines + 1} more"]
        for i, name in enumerate(shown):
            parts.append(_text(x + 8, y + 52 + i * 14, _fit(name, w - 16, 11), size=11, fill="#3e4c59"))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def outputs() -> dict[str, str]:
    """Picture file name -> SVG text, one per dashboard."""
    files = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        files[f"{path.stem}.svg"] = render(dashboard, str(path.relative_to(ROOT)))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    args = parser.parse_args(argv)
    return sync(outputs(), OUT, root=ROOT, check=args.check, pattern="*.svg",
                command="python docs/render_dashboards.py")


if __name__ == "__main__":
    sys.exit(main())
