"""The mutation score per module, from what `mutmut run` left in mutants/ (docs: Development, "Mutation testing").

    mutmut run --max-children 2 && python -m tests.support.mutation

A mutant is killed when a test failed with it, or when it made a test run past its time limit (an endless
loop is caught too); the score is the killed share of all mutants, those no test reached included.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from tests.support.paths import ROOT

KILLED = {1: "killed", 3: "killed", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout"}
"""mutmut 3's exit codes that mean a test caught the mutant (see mutmut/stats.py)."""
NAMES = {0: "survived", 33: "no tests", 34: "skipped", 37: "caught by type check", None: "not checked"}


def scores(mutants: Path) -> list[tuple[str, Counter[str]]]:
    rows = []
    for meta in sorted(mutants.rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"].values()
        rows.append((str(meta.relative_to(mutants))[: -len(".meta")],
                     Counter(KILLED.get(c) or NAMES.get(c, f"exit {c}") for c in codes)))
    return rows


def main() -> int:
    mutants = ROOT / "mutants"
    rows = scores(mutants)
    if not rows:
        print(f"no results in {mutants}: run `mutmut run` first", file=sys.stderr)
        return 1
    print(f"{'module':34} {'mutants':>7} {'killed':>7} {'score':>7}  other")
    for name, counts in [*rows, ("all", sum((c for _, c in rows), Counter()))]:
        total = sum(counts.values())
        killed = counts["killed"] + counts["timeout"]
        other = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()) if k not in ("killed", "timeout"))
        print(f"{name:34} {total:7} {killed:7} {100 * killed / total:6.1f}%  {other}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
