"""Write the manual's generated pieces (docs/generated/*.md) from the code they describe.

    python docs/generate.py            # rewrite docs/generated/
    python docs/generate.py --check    # exit 1 when a committed file differs from what the code gives

The pages include these files with the pymdownx.snippets extension (`--8<-- "settings.md"`):

    settings.md            every setting, from exporter/settings.py         (configuration.md)
    metrics-<group>.md     every metric family: type, labels, unit, HELP    (metrics.md)
    metrics-sources.md     where each resource family's values come from    (metrics.md)
    kinds.md               the table of resource kinds                      (architecture.md)
    alerts.md              every alert rule, from callmeter-rules.yml       (alerts.md)

Run from anywhere; needs the package installed (`pip install -e '.[test]'`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]  # docgen beside this file; tests.support and exporter at the root

from docgen import alerts_table, files, metrics_table, settings_table  # noqa: E402

OUT = HERE / "generated"


def outputs() -> dict[str, str]:
    return {"settings.md": settings_table.render(), **metrics_table.outputs(), "alerts.md": alerts_table.render()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    args = parser.parse_args(argv)
    return files.sync(outputs(), OUT, root=ROOT, check=args.check, pattern="*.md", command="python docs/generate.py")


if __name__ == "__main__":
    sys.exit(main())
