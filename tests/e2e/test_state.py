"""The state file under a kill -9: a writer killed mid-write leaves the previous file whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import ROOT

KILL_WRITER = """
import sys, json
from pathlib import Path
from exporter.poll.state import StateFile
f = StateFile(Path(sys.argv[1]), base_url="x")
n = 0
while True:
    n += 1
    f.write(json.dumps({"n": n, "pad": "x" * 4_000_000}).encode())
    print(n, flush=True)
"""


def test_a_kill_9_during_a_write_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    for attempt in range(5):
        proc = subprocess.Popen([sys.executable, "-c", KILL_WRITER, str(path)], stdout=subprocess.PIPE,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.stdout is not None
        for _ in range(2 + attempt):
            proc.stdout.readline()  # a few whole writes, then kill it somewhere in the next one
        proc.kill()
        proc.wait()
        proc.stdout.close()
        assert json.loads(path.read_text())["n"] >= 2  # always one whole write, never a torn one
