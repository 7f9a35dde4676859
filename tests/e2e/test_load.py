"""/metrics of the real `--demo` process under wrk: a few seconds of load, plain and gzip, no errors;
it prints its figures (the in-process load while snapshots swap is tests/unit/expose/test_load.py)."""

from __future__ import annotations

import re
import subprocess
from typing import Any

from tests.support.processes import ExporterProcess
from tests.support.prometheus import require_binary


def _wrk_figures(output: str) -> dict[str, Any]:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {"rate": float(rate.group(1)) if rate else 0.0, "requests": int(total.group(1)) if total else 0,
            "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(int(g) for g in sockets.groups()) if sockets else 0}


def test_wrk_against_the_demo_process_sees_no_errors() -> None:
    wrk = require_binary("wrk")  # fails under CI=true when missing, skips elsewhere
    with ExporterProcess("--demo") as exporter:
        exporter.wait_ready(30)
        figures = {}
        for name, header in (("plain", "Accept-Encoding: identity"), ("gzip", "Accept-Encoding: gzip")):
            result = subprocess.run([wrk, "-t2", "-c8", "-d3s", "-H", header,
                                     f"{exporter.url}/metrics"], capture_output=True, text=True, timeout=60,
                                    check=True)
            figures[name] = _wrk_figures(result.stdout)
        assert exporter.proc.poll() is None
    for name, f in figures.items():
        print(f"\nwrk {name}: {f['requests']} requests, {f['rate']:.0f} req/s, {f['non2xx']} non-2xx, "
              f"{f['socket_errors']} socket errors (2 threads, 8 connections, demo mode)")
        assert f["requests"] > 0
        assert f["non2xx"] == 0
        assert f["socket_errors"] == 0
