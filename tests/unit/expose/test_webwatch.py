"""The web config kept current (exporter/expose/webwatch.py): a renewed certificate or a changed user list
takes effect without a restart, and a change that does not load leaves the last good config in force."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import time
from dataclasses import replace
from pathlib import Path

import bcrypt
import pytest
from structlog.testing import capture_logs

from exporter.expose import webwatch
from exporter.expose.webconfig import load_web_config
from exporter.expose.webwatch import WebConfigWatch
from tests.support.fake_time import FakeTime
from tests.support.faultkit import ServerThread
from tests.support.webconfig import HASH, PASSWORD, TLS_AND_AUTH, Pki, basic, client_context, get, renew_server, write

OTHER_PASSWORD = "rotated-scrape"


def _private(pki: Pki, folder: Path) -> Pki:
    """A copy of the shared test PKI that a test may change (the fixture is shared by the module)."""
    shutil.copytree(pki.folder, folder, dirs_exist_ok=True)
    return replace(pki, folder=folder, **{name: folder / getattr(pki, name).name for name in (
        "ca", "server_cert", "server_key", "client_cert", "client_key", "stranger_cert", "stranger_key")})


def _users(*pairs: tuple[str, str]) -> str:
    lines = "".join(f"  {user}: {bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()}\n"
                    for user, password in pairs)
    return "basic_auth_users:\n" + lines


def _rewrite(path: Path, text: str) -> None:
    """Write new contents and make sure the change is seen even on a file system with coarse mtimes."""
    before = path.stat().st_mtime_ns
    path.write_text(text)
    if path.stat().st_mtime_ns == before:
        stamp = before + 1_000_000_000
        os.utime(path, ns=(stamp, stamp))


def test_a_changed_user_list_takes_effect_after_the_check_interval(tmp_path: Path) -> None:
    path = write(tmp_path, _users(("prometheus", PASSWORD)))
    clock = FakeTime(1000.0)
    watch = WebConfigWatch(load_web_config(path), clock=clock.clock)
    assert watch.authorize(basic("prometheus", PASSWORD)) is True

    _rewrite(path, _users(("prometheus", OTHER_PASSWORD)))
    # Within the check interval the files are not looked at: the old list still holds.
    clock.now += webwatch.CHECK_EVERY / 2
    assert watch.authorize(basic("prometheus", PASSWORD)) is True

    clock.now += webwatch.CHECK_EVERY
    with capture_logs() as logs:
        assert watch.authorize(basic("prometheus", OTHER_PASSWORD)) is True
        assert watch.authorize(basic("prometheus", PASSWORD)) is False
    assert [entry["event"] for entry in logs] == ["webconfig.reloaded"]
    assert logs[0]["basic_auth_users"] == 1


def test_a_change_that_does_not_load_keeps_the_last_good_config_and_is_logged_once(tmp_path: Path) -> None:
    path = write(tmp_path, _users(("prometheus", PASSWORD)))
    clock = FakeTime(1000.0)
    watch = WebConfigWatch(load_web_config(path), clock=clock.clock)

    _rewrite(path, "basic_auth_users: [not, a, mapping]\n")
    with capture_logs() as logs:
        for _ in range(5):
            clock.now += webwatch.CHECK_EVERY
            assert watch.authorize(basic("prometheus", PASSWORD)) is True
            assert watch.authorize(None) is False
    failures = [entry for entry in logs if entry["event"] == "webconfig.reload_failed"]
    assert len(failures) == 1, logs
    assert "basic_auth_users" in failures[0]["error"]
    assert PASSWORD not in str(logs) and HASH not in str(logs)

    # Fixed again: the fixed version loads.
    _rewrite(path, _users(("prometheus", OTHER_PASSWORD)))
    clock.now += webwatch.CHECK_EVERY
    assert watch.authorize(basic("prometheus", OTHER_PASSWORD)) is True


def test_turning_tls_on_while_running_asks_for_a_restart(pki: Pki, tmp_path: Path) -> None:
    mine = _private(pki, tmp_path)
    path = write(mine.folder, _users(("prometheus", PASSWORD)))
    clock = FakeTime(1000.0)
    watch = WebConfigWatch(load_web_config(path), clock=clock.clock)
    assert watch.ssl_context() is None

    _rewrite(path, TLS_AND_AUTH)
    clock.now += webwatch.CHECK_EVERY
    with capture_logs() as logs:
        assert watch.authorize(basic("prometheus", PASSWORD)) is True
    assert [entry["event"] for entry in logs] == ["webconfig.reload_failed"]
    assert "needs a restart" in logs[0]["error"]
    assert watch.current().tls is None


def _served_certificate(port: int, pki: Pki) -> bytes:
    context = client_context(pki)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        served = tls.getpeercert(binary_form=True)
    assert served is not None
    return served


def _der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def test_a_renewed_certificate_is_served_from_the_next_handshake_without_a_restart(pki: Pki, tmp_path: Path) -> None:
    mine = _private(pki, tmp_path)
    path = write(mine.folder, TLS_AND_AUTH)
    watch = WebConfigWatch(load_web_config(path))
    first = _der(mine.server_cert)
    with ServerThread(ssl_context=watch.ssl_context(), authorize=watch.authorize) as server:
        assert _served_certificate(server.port, mine) == first
        assert get(server.port, context=client_context(mine),
                   headers={"Authorization": basic("prometheus", PASSWORD)})[0] == 200

        renew_server(mine)
        renewed = _der(mine.server_cert)
        assert renewed != first
        deadline = time.monotonic() + 10 * webwatch.CHECK_EVERY
        served = first
        while served != renewed and time.monotonic() < deadline:
            time.sleep(webwatch.CHECK_EVERY / 4)
            served = _served_certificate(server.port, mine)
        assert served == renewed, "the renewed certificate was never served"
        # Requests go on over the new certificate, auth unchanged.
        assert get(server.port, context=client_context(mine),
                   headers={"Authorization": basic("prometheus", PASSWORD)})[0] == 200
        assert get(server.port, context=client_context(mine))[0] == 401


@pytest.mark.parametrize("broken", ["server.key", "web.yml"])
def test_a_renewal_that_does_not_load_keeps_serving_the_last_good_certificate(pki: Pki, tmp_path: Path,
                                                                             broken: str) -> None:
    mine = _private(pki, tmp_path)
    path = write(mine.folder, TLS_AND_AUTH)
    watch = WebConfigWatch(load_web_config(path))
    first = _der(mine.server_cert)
    with ServerThread(ssl_context=watch.ssl_context(), authorize=watch.authorize) as server:
        _rewrite(mine.folder / broken, "not what it should be\n")
        time.sleep(webwatch.CHECK_EVERY * 1.5)
        for _ in range(3):
            assert _served_certificate(server.port, mine) == first
        assert get(server.port, context=client_context(mine),
                   headers={"Authorization": basic("prometheus", PASSWORD)})[0] == 200
