"""Write the CallMeter Grafana dashboards (JSON) from their Python definitions.

    python grafana/generate.py                  # rewrite grafana/dashboards/*.json
    python grafana/generate.py --check          # exit 1 when a committed file differs
    python grafana/generate.py --output-dir D   # write into D instead

Needs the development dependency grafana-foundation-sdk (see pyproject.toml, extra "test").
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from callmeter_dashboards import DASHBOARDS, render

DEFAULT_DIR = Path(__file__).resolve().parent / "dashboards"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_DIR, help="folder of the JSON files")
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    args = parser.parse_args(argv)
    out: Path = args.output_dir

    stale = []
    for name, build in DASHBOARDS.items():
        text = render(build())
        path = out / name
        if args.check:
            current = path.read_text(encoding="utf-8") if path.exists() else ""
            if current != text:
                stale.append(name)
                diff = difflib.unified_diff(
                    current.splitlines(keepends=True), text.splitlines(keepends=True), str(path), "generated"
                )
                sys.stdout.writelines(list(diff)[:60])
            continue
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run: python grafana/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
