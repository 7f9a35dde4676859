"""Start-up on a Free-plan budget, cold and from a state file, side by side.

Starts the simulator with a 10-requests-a-minute key limit and the real exporter against it
(CALLMETER_PLAN=free, so 8 requests a minute with the default budget share). The first start is
cold (an empty state folder); once every test has quality data and a minute has passed, the exporter
is stopped (SIGTERM: it saves its state) and started again with the same state file. For each start
it prints the seconds until /readyz, until every test has quality data, the API requests spent in
the first minute, and the 429s.

    python benchmarks/startup.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

PORT = 10299
TIMEOUT = 400.0
MINUTE = 60.0


def measure(env: dict[str, str], control: str, tests: int) -> dict[str, float | None]:
    requests_before = httpx.get(control).json()["requests"]
    start = time.monotonic()
    exporter = subprocess.Popen([sys.executable, "-m", "exporter", "--listen-address", f"127.0.0.1:{PORT}"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out: dict[str, float | None] = {"ready": None, "quality": None, "first_minute": None, "429": None}
    try:
        while time.monotonic() - start < TIMEOUT:
            elapsed = time.monotonic() - start
            if out["first_minute"] is None and elapsed >= MINUTE:
                out["first_minute"] = httpx.get(control).json()["requests"] - requests_before
            try:
                if out["ready"] is None and httpx.get(f"http://127.0.0.1:{PORT}/readyz").status_code == 200:
                    out["ready"] = elapsed
                text = httpx.get(f"http://127.0.0.1:{PORT}/metrics").text
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            if out["quality"] is None and out["ready"] is not None and text.count("callmeter_test_run_mos{") >= tests:
                out["quality"] = elapsed
            if out["quality"] is not None and out["first_minute"] is not None:
                line = next((x for x in text.splitlines() if x.startswith("callmeter_exporter_rate_limited_total")),
                            "x nan")
                out["429"] = float(line.split()[-1])
                return out
            time.sleep(0.2)
        return out
    finally:
        exporter.terminate()
        exporter.wait(15)


def cell(value: float | None, unit: str = " s") -> str:
    return "never" if value is None else f"{value:.1f}{unit}" if unit else f"{value:.0f}"


def main() -> int:
    sim = subprocess.Popen([sys.executable, "-m", "exporter.simulator", "--listen-address", "127.0.0.1:0",
                            "--rate-limit", "10"], stdout=subprocess.PIPE, text=True)
    assert sim.stdout is not None
    info = json.loads(sim.stdout.readline())
    control = info["base_url"].removesuffix("/api/v1") + "/_sim/state"
    folder = Path(tempfile.mkdtemp(prefix="callmeter-startup-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLMETER_")}
    env.update(CALLMETER_API_KEY=info["key"], CALLMETER_BASE_URL=info["base_url"], CALLMETER_PLAN="free",
               CALLMETER_LOG_LEVEL="warning", CALLMETER_STATE_FILE=str(folder / "state.json"))
    tests = len(httpx.get(control).json()["tests"])
    try:
        cold = measure(env, control, tests)
        warm = measure(env, control, tests)
    finally:
        sim.terminate()
        sim.wait(10)
    print(f"Free plan (8 requests a minute for the exporter), {tests} tests; the restart reads the state file "
          "the cold start wrote.\n")
    print("| start | ready after | quality data for every test after | API requests in the first minute | 429s |")
    print("|---|---:|---:|---:|---:|")
    for name, row in (("cold (no state file)", cold), ("restart with a state file", warm)):
        print(f"| {name} | {cell(row['ready'])} | {cell(row['quality'])} | {cell(row['first_minute'], '')} "
              f"| {cell(row['429'], '')} |")
    return 0 if cold["quality"] is not None and warm["quality"] is not None else 1


if __name__ == "__main__":
    sys.exit(main())
