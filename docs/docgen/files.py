"""Generated files kept in the repository: written from what the code gives, or checked against it."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Mapping
from pathlib import Path


def sync(files: Mapping[str, str], out: Path, *, root: Path, check: bool, pattern: str, command: str) -> int:
    """Write each file that differs into `out`, or with `check` only say which differ (with a diff). A file
    in `out` matching `pattern` that no longer comes from the code is an error either way. 0 when current."""
    stale = []
    for name, text in files.items():
        path = out / name
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == text:
            continue
        if check:
            stale.append(name)
            diff = difflib.unified_diff(current.splitlines(keepends=True), text.splitlines(keepends=True),
                                        str(path.relative_to(root)), "generated")
            sys.stdout.writelines(list(diff)[:60])
            continue
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(root)}")
    extra = sorted(p.name for p in out.glob(pattern) if p.name not in files) if out.exists() else []
    if extra:
        print(f"not generated from the code (remove them): {', '.join(extra)}", file=sys.stderr)
    if stale:
        print(f"out of date: {', '.join(stale)}; run: {command}", file=sys.stderr)
    return 1 if extra or stale else 0
