"""Run the real Prometheus and Alertmanager binaries (Debian packages) inside tests.

    with run_alertmanager(AM_CONFIG) as am, run_prometheus(prom_config(am.url)) as prom:
        wait_until(lambda: prom.alerts(), timeout=60, what="an alert in Prometheus")

Each server listens on 127.0.0.1 on a free port, keeps its data and log in a temporary
folder, and is stopped by its own PID when the block ends. A failure to start includes the
tail of the server's log in the message.

``serve_process`` runs any other local server the same way (the exporter, the simulator):
subclass ``ServerProcess`` and set its ``ready_path``.

Binaries are looked up on PATH by their Debian names: ``prometheus``, ``promtool``,
``prometheus-alertmanager``, ``amtool`` and ``prometheus-pushgateway``. Use ``require_binary`` so a missing binary skips
a test on a workstation but fails it in CI (``CI`` set to true, 1 or yes: ``tests.support.ci``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.ci import require_command

__all__ = [
    "AlertmanagerServer",
    "PrometheusServer",
    "ServerProcess",
    "free_port",
    "require_binary",
    "run_alertmanager",
    "run_prometheus",
    "run_pushgateway",
    "serve_process",
    "wait_until",
]

T = TypeVar("T")

_LOG_TAIL_LINES = 40


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[Any], timeout: float = 10) -> None:
    """Stop a process we started, by its own PID: SIGTERM, wait, then SIGKILL."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def require_binary(name: str, package: str = "prometheus and prometheus-alertmanager") -> str:
    """Path of ``name`` on PATH; skip the test when missing, or fail it in CI (``tests.support.ci``)."""
    return require_command(name, package)


def promtool_check_metrics(exposition: bytes | str) -> tuple[int, str]:
    """`promtool check metrics` on an exposition: its exit code, and all it printed (its lint findings)."""
    promtool = require_binary("promtool", "prometheus")
    data = exposition.encode() if isinstance(exposition, str) else exposition
    checked = subprocess.run([promtool, "check", "metrics"], input=data, capture_output=True, timeout=30, check=False)
    return checked.returncode, (checked.stdout + checked.stderr).decode()


def unix_time(rfc3339: str) -> float:
    """A time from Prometheus' API (RFC 3339, nanoseconds, ``Z`` or an offset) as Unix seconds; since
    Python 3.11 `fromisoformat` reads all of these (digits past the microsecond are dropped)."""
    return datetime.fromisoformat(rfc3339).timestamp()


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.25,
    diagnostics: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns something truthy and return that; fail after ``timeout`` s.

    ``diagnostics`` is called on timeout and its text is added to the failure message.
    """
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            extra = f"\n{diagnostics()}" if diagnostics is not None else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last value: {last!r}{extra}")
        time.sleep(interval)


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class ServerProcess:
    """A started server: its PID, base URL, log file and a small JSON-over-HTTP client."""

    ready_path = "/-/ready"

    def __init__(self, *, name: str, process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
        self.name = name
        self.process = process
        self.url = url
        self.log_path = log_path

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return f"--- last lines of {self.log_path} ---\n{_tail(self.log_path, lines)}"

    def get(self, path: str, params: Mapping[str, str] | None = None, *, timeout: float = 5.0) -> Any:
        """GET ``path`` and decode its JSON body."""
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + self.ready_path, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            if self.process.poll() is not None:
                pytest.fail(
                    f"{self.name} exited with code {self.process.returncode} before it was ready\n" + self.log_tail()
                )
            if time.monotonic() >= deadline:
                pytest.fail(f"{self.name} not ready after {timeout:.0f}s at {self.url}\n" + self.log_tail())
            time.sleep(0.1)

    def stop(self) -> None:
        stop_process(self.process)


class PrometheusServer(ServerProcess):
    """A running ``prometheus`` with query helpers for its HTTP API."""

    def _data(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        body = self.get(path, params)
        if body.get("status") != "success":
            raise AssertionError(f"{path} answered {body!r}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the ``result`` list (``metric`` + ``value`` per series)."""
        data = self._data("/api/v1/query", {"query": expr})
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts (``labels``, ``annotations``, ``state``, ``value``)."""
        alerts: list[dict[str, Any]] = self._data("/api/v1/alerts")["alerts"]
        return alerts

    def firing(self, alertname: str) -> list[dict[str, Any]]:
        """Firing alerts named ``alertname``."""
        return [a for a in self.alerts() if a["labels"].get("alertname") == alertname and a["state"] == "firing"]

    def rule_groups(self) -> list[dict[str, Any]]:
        """Loaded rule groups, each with its ``rules`` (labels, annotations, query, duration)."""
        groups: list[dict[str, Any]] = self._data("/api/v1/rules")["groups"]
        return groups

    def rule(self, name: str) -> dict[str, Any] | None:
        """The loaded rule named ``name`` (an alert's: ``health``, ``lastEvaluation``, its ``alerts``)."""
        return next((rule for group in self.rule_groups() for rule in group["rules"] if rule.get("name") == name),
                    None)

    def targets(self) -> list[dict[str, Any]]:
        """Active scrape targets (``health``, ``lastError``, ``scrapeUrl``...)."""
        targets: list[dict[str, Any]] = self._data("/api/v1/targets")["activeTargets"]
        return targets

    def alertmanagers(self) -> list[str]:
        """URLs of the Alertmanagers Prometheus has discovered and sends alerts to."""
        data = self._data("/api/v1/alertmanagers")
        return [am["url"] for am in data["activeAlertmanagers"]]


class AlertmanagerServer(ServerProcess):
    """A running ``prometheus-alertmanager``."""

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds and has not seen resolved (API v2)."""
        alerts: list[dict[str, Any]] = self.get("/api/v2/alerts")
        return alerts


def _write_files(folder: Path, files: Mapping[str, str | Path] | None) -> None:
    for name, content in (files or {}).items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        else:
            target.write_text(content)


@contextlib.contextmanager
def _workdir(workdir: Path | None, prefix: str) -> Iterator[Path]:
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        yield workdir
        return
    with tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True) as tmp:
        yield Path(tmp)


S = TypeVar("S", bound=ServerProcess)


@contextlib.contextmanager
def serve_process(
    *,
    name: str,
    cls: type[S],
    argv: Sequence[str],
    port: int,
    folder: Path,
    ready_timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[S]:
    """Start ``argv`` (a server on 127.0.0.1:``port``), wait until ``cls.ready_path`` answers 200.

    Output goes to ``folder/<name>.log``; the process is stopped by its PID when the block ends.
    """
    log_path = folder / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=folder,
            env=dict(env) if env is not None else None,
        )
    server = cls(name=name, process=process, url=f"http://127.0.0.1:{port}", log_path=log_path)
    try:
        server.wait_ready(ready_timeout)
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def run_prometheus(
    config: str,
    *,
    files: Mapping[str, str | Path] | None = None,
    extra_args: Sequence[str] = (),
    resend_delay: str | None = "1s",
    workdir: Path | None = None,
    ready_timeout: float = 30.0,
) -> Iterator[PrometheusServer]:
    """Start ``prometheus`` with ``config`` (YAML text) and yield it once ``/-/ready`` answers.

    ``files`` are written next to the config (name -> text, or a Path to copy), so a config may
    name ``rule_files: [callmeter-rules.yml]`` relative to its own folder. ``resend_delay`` sets
    ``--rules.alert.resend-delay`` (Prometheus' default of 1m is too slow for tests).
    """
    binary = require_binary("prometheus")
    with _workdir(workdir, "prometheus-") as folder:
        _write_files(folder, files)
        config_path = folder / "prometheus.yml"
        config_path.write_text(config)
        port = free_port()
        argv = [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=info",
        ]
        if resend_delay is not None:
            argv.append(f"--rules.alert.resend-delay={resend_delay}")
        argv.extend(extra_args)
        with serve_process(
            name="prometheus",
            cls=PrometheusServer,
            argv=argv,
            port=port,
            folder=folder,
            ready_timeout=ready_timeout,
        ) as server:
            yield server


@contextlib.contextmanager
def run_alertmanager(
    config: str,
    *,
    extra_args: Sequence[str] = (),
    workdir: Path | None = None,
    ready_timeout: float = 30.0,
) -> Iterator[AlertmanagerServer]:
    """Start ``prometheus-alertmanager`` with ``config`` (YAML text), without clustering."""
    binary = require_binary("prometheus-alertmanager")
    with _workdir(workdir, "alertmanager-") as folder:
        config_path = folder / "alertmanager.yml"
        config_path.write_text(config)
        port = free_port()
        argv = [
            binary,
            f"--config.file={config_path}",
            f"--storage.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            # An empty address disables the gossip cluster, so no second port is bound.
            "--cluster.listen-address=",
            "--log.level=info",
            *extra_args,
        ]
        with serve_process(
            name="alertmanager",
            cls=AlertmanagerServer,
            argv=argv,
            port=port,
            folder=folder,
            ready_timeout=ready_timeout,
        ) as server:
            yield server


@contextlib.contextmanager
def run_pushgateway(*, ready_timeout: float = 30.0) -> Iterator[ServerProcess]:
    """Start ``prometheus-pushgateway`` (no persistence) and yield it once ``/-/ready`` answers."""
    binary = require_binary("prometheus-pushgateway", "prometheus-pushgateway")
    with _workdir(None, "pushgateway-") as folder:
        port = free_port()
        argv = [binary, f"--web.listen-address=127.0.0.1:{port}"]
        with serve_process(name="pushgateway", cls=ServerProcess, argv=argv, port=port, folder=folder,
                           ready_timeout=ready_timeout) as server:
            yield server
