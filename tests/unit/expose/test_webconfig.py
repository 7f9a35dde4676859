"""The web config file (exporter-toolkit format): checked at load, then TLS and basic auth on a real server
(the exporter process serving them is tests/e2e/test_webconfig.py)."""

from __future__ import annotations

import base64
import http.client
import ssl
from pathlib import Path

import bcrypt
import pytest

from exporter.expose import webconfig
from exporter.expose.webconfig import WebConfigError, load_web_config
from tests.support.faultkit import ServerThread, parse_samples
from tests.support.webconfig import HASH, PASSWORD, TLS_AND_AUTH, Pki, basic, client_context, get, write

# -- loading and checking -------------------------------------------------------------------------


def test_empty_file_means_plain_http_and_no_auth(tmp_path: Path) -> None:
    config = load_web_config(write(tmp_path, ""))
    assert config.ssl_context() is None
    assert config.authorizer() is None
    assert config.authorize(None) is True


def test_full_file_loads_tls_and_users_relative_to_its_folder(pki: Pki) -> None:
    path = write(pki.folder, f"""
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  min_version: TLS13
  prefer_server_cipher_suites: true
http_server_config:
  http2: false
basic_auth_users:
  prometheus: {HASH}
""")
    config = load_web_config(path)
    context = config.ssl_context()
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert config.authorizer() is not None


@pytest.mark.parametrize(("text", "expected"), [
    ("tls_server_config: [1, 2]", "tls_server_config must be a mapping"),
    ("- a\n- b", "expected a mapping"),
    ("tls_server_config:\n  cert_file: server.crt", "needs both cert_file and key_file"),
    ("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key", "no such file"),
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS99",
     "unknown tls_server_config.min_version"),
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n"
     "  max_version: TLS12", "lower than min_version"),
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
     "  client_auth_type: RequireAndVerifyClientCert", "needs client_ca_file"),
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt",
     "does not verify client certificates"),
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
     "  client_auth_type: RequireAnyClientCert\n  client_ca_file: ca.crt", "RequireAnyClientCert is not supported"),
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: Maybe",
     "unknown client_auth_type"),
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  cipher_suites: [TLS_AES_128_GCM_SHA256]",
     "cipher_suites is not supported"),
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: client.key", "cannot load cert_file"),
    ("tls_server_config:\n  cert_file: ca.srl\n  key_file: server.key", "cannot load cert_file"),
    ("basic_auth_users:\n  prometheus: hunter2", "must be a bcrypt hash"),
    (f"basic_auth_users:\n  yes: {HASH}", "must be a non-empty string"),
    ("basic_auth_users: [prometheus]", "must map user names"),
    ("http_server_config:\n  headers:\n    X-Frame-Options: deny", "headers is not supported"),
    ("tls_config:\n  cert_file: server.crt", "unknown setting tls_config"),
    ("tls_server_config:\n  cert_file: server.crt\n   key_file: [", "not valid YAML at line"),
])
def test_unusable_files_are_refused_with_one_clear_line(pki: Pki, text: str, expected: str) -> None:
    path = write(pki.folder, text, "bad.yml")
    with pytest.raises(WebConfigError) as raised:
        load_web_config(path)
    message = str(raised.value)
    assert expected in message
    assert str(path) in message
    assert "\n" not in message
    assert "hunter2" not in message


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match="cannot read: No such file"):
        load_web_config(tmp_path / "absent.yml")


# -- basic auth -----------------------------------------------------------------------------------


def test_basic_auth_accepts_only_the_right_password(tmp_path: Path) -> None:
    config = load_web_config(write(tmp_path, f"basic_auth_users:\n  prometheus: {HASH}\n"))
    assert config.authorize(basic("prometheus", PASSWORD)) is True
    assert config.authorize(basic("prometheus", "wrong")) is False
    assert config.authorize(basic("grafana", PASSWORD)) is False
    assert config.authorize(None) is False
    assert config.authorize("") is False
    assert config.authorize("Bearer " + PASSWORD) is False
    assert config.authorize("Basic !!!not-base64!!!") is False
    assert config.authorize("Basic " + base64.b64encode(b"no-colon").decode()) is False
    assert config.authorize("Basic " + base64.b64encode(b"prometheus:\xff\xfe").decode()) is False
    assert config.authorize(basic("prometheus", "x" * 100)) is False  # beyond bcrypt's 72 bytes


def test_a_verified_header_does_not_pay_bcrypt_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_web_config(write(tmp_path, f"basic_auth_users:\n  prometheus: {HASH}\n"))
    calls = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    good, bad = basic("prometheus", PASSWORD), basic("prometheus", "wrong")
    for _ in range(50):
        assert config.authorize(good) is True
        assert config.authorize(bad) is False
    assert len(calls) == 2


def test_the_auth_cache_stays_small_under_a_flood_of_distinct_headers(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_web_config(write(tmp_path, f"basic_auth_users:\n  prometheus: {HASH}\n"))
    monkeypatch.setattr(bcrypt, "checkpw", lambda password, hashed: False)
    auth = config.authorizer()
    assert isinstance(auth, webconfig.BasicAuth)
    for n in range(2000):
        auth(basic("prometheus", f"guess-{n}"))
    assert len(auth._verified) <= webconfig.AUTH_CACHE_SIZE


# -- TLS and auth on the real server --------------------------------------------------------------


def _serve(pki: Pki, text: str) -> ServerThread:
    config = load_web_config(write(pki.folder, text, "serve.yml"))
    return ServerThread(ssl_context=config.ssl_context(), authorize=config.authorizer())


def test_tls_with_basic_auth_serves_only_the_right_password(pki: Pki) -> None:
    with _serve(pki, TLS_AND_AUTH) as server:
        context = client_context(pki)
        status, body = get(server.port, context=context, headers={"Authorization": basic("prometheus", PASSWORD)})
        assert status == 200
        assert ("callmeter_up", ()) in parse_samples(body.decode())
        assert get(server.port, context=context, headers={"Authorization": basic("prometheus", "nope")})[0] == 401
        assert get(server.port, context=context)[0] == 401


def test_basic_auth_guards_the_landing_page_but_not_the_probes(pki: Pki) -> None:
    with _serve(pki, TLS_AND_AUTH) as server:
        context = client_context(pki)
        assert get(server.port, path="/", context=context)[0] == 401
        good = {"Authorization": basic("prometheus", PASSWORD)}
        assert get(server.port, path="/", context=context, headers=good)[0] == 200
        assert get(server.port, path="/healthz", context=context)[0] == 200
        assert get(server.port, path="/readyz", context=context)[0] in (200, 503)


def test_plain_http_is_refused_when_tls_is_on(pki: Pki) -> None:
    with _serve(pki, TLS_AND_AUTH) as server:
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            get(server.port, context=None, headers={"Authorization": basic("prometheus", PASSWORD)})
        # ... and the server is still there for a TLS client afterwards.
        ok = get(server.port, context=client_context(pki), headers={"Authorization": basic("prometheus", PASSWORD)})
        assert ok[0] == 200


def test_client_certificate_is_required_when_configured(pki: Pki) -> None:
    text = """
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
"""
    with _serve(pki, text) as server:
        good = client_context(pki, cert=(pki.client_cert, pki.client_key))
        assert get(server.port, context=good)[0] == 200
        for context in (client_context(pki), client_context(pki, cert=(pki.stranger_cert, pki.stranger_key))):
            with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException, OSError)):
                get(server.port, context=context)


def test_min_version_tls13_refuses_a_tls12_client(pki: Pki) -> None:
    text = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n"
    with _serve(pki, text) as server:
        assert get(server.port, context=client_context(pki))[0] == 200
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            get(server.port, context=client_context(pki, max_version=ssl.TLSVersion.TLSv1_2))
