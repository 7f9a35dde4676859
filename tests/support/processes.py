"""Run the real `callmeter-exporter` process for end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.support.prometheus import free_port, stop_process


class ExporterProcess:
    """`python -m exporter` with the given flags and CALLMETER_* variables; output goes to a file."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.NamedTemporaryFile(prefix="exporter-", suffix=".log", delete=False)  # noqa: SIM115
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("CALLMETER_")}
        full_env.update({"CALLMETER_LOG_FORMAT": "json", **(env or {})})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", "--listen-address", f"127.0.0.1:{self.port}", *args],
            stdout=self._log, stderr=subprocess.STDOUT, env=full_env)

    def output(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5, **kwargs)  # type: ignore[arg-type]

    def metrics(self) -> str:
        return self.get("/metrics").text

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll `condition` until true; return the seconds it took. Fails with the process output."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise AssertionError(f"exporter exited with {self.proc.returncode} waiting for {what}:\n"
                                     + self.output()[-3000:])
            try:
                if condition():
                    return time.monotonic() - start
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n" + self.output()[-3000:])

    def wait_ready(self, timeout: float = 30) -> float:
        return self.wait_for(lambda: self.get("/readyz").status_code == 200, timeout, "/readyz 200")

    def stop(self, timeout: float = 10) -> int:
        stop_process(self.proc, timeout)
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> ExporterProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        os.unlink(self._log.name)
