"""The web configuration file of Prometheus exporters (exporter-toolkit format): TLS and basic auth.

    tls_server_config:
      cert_file: server.crt            # paths relative to this file's folder
      key_file: server.key
      min_version: TLS12               # TLS10, TLS11, TLS12 (default), TLS13
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: ca.crt
    basic_auth_users:
      prometheus: $2y$10$...           # bcrypt hash: htpasswd -nBC 10 "" | tr -d ':\\n'

`load_web_config(path)` reads and checks the whole file once, certificates included, and raises
`WebConfigError` (one line, naming the file) for anything it cannot honour: a setting that secures
the endpoint is never ignored silently. Settings Python's TLS stack cannot express
(`cipher_suites`, `curve_preferences`, `client_allowed_sans`, `RequireAnyClientCert`) are refused
with what to use instead.

Basic auth compares against bcrypt hashes, which are slow on purpose; verified headers are
remembered (by their SHA-256, never in clear) so a scrape every few seconds does not pay bcrypt
each time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt

TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# Go's RequestClientCert asks for a certificate and never checks it; nothing here reads an unchecked
# certificate, so not asking at all grants exactly the same access.
CLIENT_AUTH = {"": ssl.CERT_NONE, "NoClientCert": ssl.CERT_NONE, "RequestClientCert": ssl.CERT_NONE,
               "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL, "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
UNSUPPORTED_CLIENT_AUTH = {
    "RequireAnyClientCert": "a certificate that is required but not verified proves nothing; "
                            "use RequireAndVerifyClientCert with client_ca_file",
}
TOP_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users")
TLS_KEYS = ("cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version",
            "prefer_server_cipher_suites")
UNSUPPORTED_TLS_KEYS = {
    "cipher_suites": "Python's TLS stack takes OpenSSL cipher names, not Go's; remove it to use its "
                     "secure defaults, or set min_version: TLS13",
    "curve_preferences": "remove it to use the TLS stack's defaults",
    "client_allowed_sans": "restrict clients with client_ca_file (a CA that signs only them) instead",
}
HTTP_KEYS = ("http2",)  # accepted; /metrics is served over HTTP/1.1, which every Prometheus speaks
_BCRYPT_HASH = re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}")
AUTH_CACHE_SIZE = 256


class WebConfigError(Exception):
    """The web config file cannot be used; the message is one line naming the file and the problem."""


@dataclass(frozen=True, slots=True)
class TlsSettings:
    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: str = "TLS12"
    max_version: str | None = None


class BasicAuth:
    """`authorize(header) -> bool` for an `Authorization: Basic ...` header against bcrypt hashes."""

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = dict(users)
        # An unknown user still costs one bcrypt, so timing does not tell which user names exist.
        self._decoy = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(10))
        self._salt = os.urandom(16)
        self._verified: dict[bytes, bool] = {}

    def __call__(self, header: str | None) -> bool:
        if not header:
            return False
        digest = hashlib.sha256(self._salt + header.encode("utf-8", "surrogateescape")).digest()
        known = self._verified.get(digest)
        if known is not None:
            return known
        allowed = self._check(header)
        if len(self._verified) >= AUTH_CACHE_SIZE:
            self._verified.clear()  # a flood of distinct headers must not grow memory
        self._verified[digest] = allowed
        return allowed

    def _check(self, header: str) -> bool:
        scheme, _, encoded = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False
        if not sep:
            return False
        hashed = self._users.get(user)
        try:
            matched = bcrypt.checkpw(password.encode(), hashed if hashed is not None else self._decoy)
        except ValueError:  # longer than bcrypt's 72 bytes
            return False
        return matched and hashed is not None


@dataclass(frozen=True)
class WebConfig:
    path: Path
    tls: TlsSettings | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)
    _context: ssl.SSLContext | None = None
    _auth: BasicAuth | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server-side TLS context (certificates already loaded), or None for plain HTTP."""
        return self._context

    def authorizer(self) -> Callable[[str | None], bool] | None:
        """What the server calls with the Authorization header; None when no users are configured."""
        return self._auth

    def authorize(self, header: str | None) -> bool:
        """True when the header grants access (always, when no users are configured)."""
        return True if self._auth is None else self._auth(header)


def load_web_config(path: Path | str) -> WebConfig:
    """Read, check and load the web config file; WebConfigError for anything unusable."""
    path = Path(path)
    raw = _read_yaml(path)
    fail = _failer(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise fail(f"expected a mapping with {', '.join(TOP_KEYS)} at the top")
    _only(raw, TOP_KEYS, {}, fail, where="")
    http = _mapping(raw.get("http_server_config"), "http_server_config", fail)
    if "headers" in http:
        raise fail("http_server_config.headers is not supported; set response headers at a reverse proxy")
    _only(http, HTTP_KEYS, {}, fail, where="http_server_config.")
    tls = _tls(_mapping(raw.get("tls_server_config"), "tls_server_config", fail), path.parent, fail)
    users = _users(raw.get("basic_auth_users"), fail)
    context = _context(tls, fail) if tls is not None else None
    return WebConfig(path=path, tls=tls, users=users, _context=context, _auth=BasicAuth(users) if users else None)


# -- checking ----------------------------------------------------------------------------------------


def _failer(path: Path) -> Callable[[str], WebConfigError]:
    return lambda message: WebConfigError(f"web config {path}: {message}")


def _read_yaml(path: Path) -> Any:
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - a packaging error, not a user's
        raise WebConfigError("web config: PyYAML is not installed (pip install pyyaml)") from None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise WebConfigError(f"web config {path}: cannot read: {reason}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise WebConfigError(f"web config {path}: not valid YAML{where}: {problem}") from None


def _mapping(value: Any, name: str, fail: Callable[[str], WebConfigError]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(f"{name} must be a mapping")
    return value


def _only(section: dict[Any, Any], allowed: tuple[str, ...], unsupported: Mapping[str, str],
          fail: Callable[[str], WebConfigError], *, where: str) -> None:
    for key in section:
        if key in unsupported:
            raise fail(f"{where}{key} is not supported: {unsupported[key]}")
        if key not in allowed:
            raise fail(f"unknown setting {where}{key} (expected one of: {', '.join(allowed)})")


def _tls(section: dict[str, Any], folder: Path, fail: Callable[[str], WebConfigError]) -> TlsSettings | None:
    _only(section, TLS_KEYS, UNSUPPORTED_TLS_KEYS, fail, where="tls_server_config.")
    values = {k: v for k, v in section.items() if v not in (None, "")}
    if not values:
        return None  # an empty section means plain HTTP, as in exporter-toolkit
    for name, value in values.items():
        if name != "prefer_server_cipher_suites" and not isinstance(value, str):
            raise fail(f"tls_server_config.{name} must be a string")

    def file(key: str) -> Path | None:
        name = values.get(key)
        return None if name is None else folder / name

    cert, key_file = file("cert_file"), file("key_file")
    if cert is None or key_file is None:
        raise fail("tls_server_config needs both cert_file and key_file")
    auth = values.get("client_auth_type", "NoClientCert")
    if auth in UNSUPPORTED_CLIENT_AUTH:
        raise fail(f"client_auth_type {auth} is not supported: {UNSUPPORTED_CLIENT_AUTH[auth]}")
    if auth not in CLIENT_AUTH:
        raise fail(f"unknown client_auth_type {auth!r} (expected one of: {', '.join(k for k in CLIENT_AUTH if k)})")
    ca = file("client_ca_file")
    if CLIENT_AUTH[auth] != ssl.CERT_NONE and ca is None:
        raise fail(f"client_auth_type {auth} needs client_ca_file (the CA that signs client certificates)")
    if CLIENT_AUTH[auth] == ssl.CERT_NONE and ca is not None:
        raise fail("client_ca_file is set but client_auth_type does not verify client certificates; "
                   "set client_auth_type: RequireAndVerifyClientCert")
    low, high = values.get("min_version", "TLS12"), values.get("max_version")
    for name, version in (("min_version", low), ("max_version", high)):
        if version is not None and version not in TLS_VERSIONS:
            raise fail(f"unknown tls_server_config.{name} {version!r} (expected one of: {', '.join(TLS_VERSIONS)})")
    if high is not None and TLS_VERSIONS[high] < TLS_VERSIONS[low]:
        raise fail("tls_server_config.max_version is lower than min_version")
    return TlsSettings(cert_file=cert, key_file=key_file, client_auth_type=auth, client_ca_file=ca, min_version=low,
                       max_version=high)


def _users(value: Any, fail: Callable[[str], WebConfigError]) -> dict[str, bytes]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail("basic_auth_users must map user names to bcrypt hashes")
    users: dict[str, bytes] = {}
    for user, hashed in value.items():
        if not isinstance(user, str) or not user or ":" in user:
            # YAML reads an unquoted yes/no/on/off as a boolean: the name must be quoted.
            raise fail(f"basic_auth_users: user name {user!r} must be a non-empty string without ':' "
                       "(quote it)")
        if not isinstance(hashed, str) or not _BCRYPT_HASH.fullmatch(hashed.strip()):
            raise fail(f"basic_auth_users: the password of {user!r} must be a bcrypt hash ($2y$..., 60 "
                       "characters), not a clear-text password")
        users[user] = hashed.strip().encode()
    return users


def _context(tls: TlsSettings, fail: Callable[[str], WebConfigError]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.minimum_version = TLS_VERSIONS[tls.min_version]
        if tls.max_version is not None:
            context.maximum_version = TLS_VERSIONS[tls.max_version]
    except (ValueError, ssl.SSLError):
        raise fail(f"this system's TLS library refuses min_version {tls.min_version}") from None
    for name, file in (("cert_file", tls.cert_file), ("key_file", tls.key_file),
                       ("client_ca_file", tls.client_ca_file)):
        if file is not None and not file.is_file():
            raise fail(f"tls_server_config.{name}: no such file {file}")
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (ssl.SSLError, OSError) as exc:
        raise fail(f"cannot load cert_file {tls.cert_file} with key_file {tls.key_file}: "
                   f"{_ssl_reason(exc)}") from None
    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise fail(f"cannot load client_ca_file {tls.client_ca_file}: {_ssl_reason(exc)}") from None
    context.set_alpn_protocols(["http/1.1"])
    return context


def _ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc.strerror or "not a PEM certificate or key").lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
