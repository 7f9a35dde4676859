"""The exporter process with a web config file: TLS and basic auth served, a bad file refused in one line."""

from __future__ import annotations

import http.client
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.faultkit import parse_samples
from tests.support.processes import ExporterProcess
from tests.support.prometheus import free_port
from tests.support.webconfig import PASSWORD, TLS_AND_AUTH, Pki, basic, client_context, get, write


def test_the_exporter_serves_tls_and_basic_auth_from_web_config_file(pki: Pki) -> None:
    path = write(pki.folder, TLS_AND_AUTH, "process.yml")
    with ExporterProcess("--demo", "--web.config.file", str(path)) as exporter:
        context = client_context(pki)
        auth = {"Authorization": basic("prometheus", PASSWORD)}

        def answers() -> bool:
            try:
                return get(exporter.port, context=context, headers=auth)[0] == 200
            except OSError:
                return False

        deadline = time.monotonic() + 30
        while not answers():
            assert exporter.proc.poll() is None, exporter.output()[-2000:]
            assert time.monotonic() < deadline, exporter.output()[-2000:]
            time.sleep(0.2)
        status, body = get(exporter.port, context=context, headers=auth)
        assert status == 200 and ("callmeter_up", ()) in parse_samples(body.decode())
        assert get(exporter.port, context=context)[0] == 401
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            get(exporter.port, context=None, headers=auth)
        assert exporter.stop() == 0
        assert PASSWORD not in exporter.output()


def test_a_bad_web_config_file_exits_2_with_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "basic_auth_users:\n  prometheus: hunter2\n")
    argv = [sys.executable, "-m", "exporter", "--demo", "--web.config.file", str(path),
            "--listen-address", f"127.0.0.1:{free_port()}"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "bcrypt" in line]
    assert len(lines) == 1 and str(path) in lines[0]
    assert "hunter2" not in result.stderr + result.stdout
