"""Start-up on a Free-plan budget: how long until /readyz, and what one full refresh costs.

Starts the simulator with a 10-requests-a-minute key limit and the real exporter against it
(CALLMETER_PLAN=free, so 8 requests a minute with the default budget share), then prints the
seconds and API requests until the exporter is ready and until every test has quality data.

    python benchmarks/startup.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx

PORT = 10299
TIMEOUT = 400.0


def main() -> int:
    sim = subprocess.Popen([sys.executable, "-m", "exporter.simulator", "--listen-address", "127.0.0.1:0",
                            "--rate-limit", "10"], stdout=subprocess.PIPE, text=True)
    assert sim.stdout is not None
    info = json.loads(sim.stdout.readline())
    control = info["base_url"].removesuffix("/api/v1") + "/_sim/state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLMETER_")}
    env.update(CALLMETER_API_KEY=info["key"], CALLMETER_BASE_URL=info["base_url"], CALLMETER_PLAN="free",
               CALLMETER_LOG_LEVEL="warning")
    start = time.monotonic()
    exporter = subprocess.Popen([sys.executable, "-m", "exporter", "--listen-address", f"127.0.0.1:{PORT}"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tests = len(httpx.get(control).json()["tests"])
    ready = None
    try:
        while time.monotonic() - start < TIMEOUT:
            try:
                if ready is None and httpx.get(f"http://127.0.0.1:{PORT}/readyz").status_code == 200:
                    ready = time.monotonic() - start
                    print(f"ready after {ready:.1f} s and {httpx.get(control).json()['requests']} API requests")
                text = httpx.get(f"http://127.0.0.1:{PORT}/metrics").text
            except httpx.HTTPError:
                time.sleep(0.5)
                continue
            if ready is not None and text.count("callmeter_test_run_mos{") >= tests:
                state = httpx.get(control).json()
                print(f"quality data for all {tests} tests after {time.monotonic() - start:.1f} s and "
                      f"{state['requests']} API requests")
                counter = "callmeter_exporter_rate_limited_total"
                print(next((line for line in text.splitlines() if line.startswith(counter)), "no 429 counter"))
                return 0
            time.sleep(0.5)
        print("timed out", file=sys.stderr)
        return 1
    finally:
        for proc in (exporter, sim):
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())
