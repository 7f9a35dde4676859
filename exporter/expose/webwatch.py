"""The web config file kept current: re-read when it, or a certificate, key or CA file it names, changes.

A renewed certificate (cert-manager, certbot) or a new basic-auth user takes effect without a
restart. The files are looked at, at most once a `CHECK_EVERY`, when a connection or a request needs
the config. A new version that does not load keeps the last good one in force and is logged once,
with what to fix. TLS cannot be turned on or off while the listener runs: that change asks for a
restart and, until then, the last good config stays.

    handshake ─► the listener's context's sni_callback ─► WebConfigWatch.current() ─► that config's context
    request ──► WebConfigWatch.authorize(header) ──────► current().authorize(header)
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from pathlib import Path

from .. import logs
from .webconfig import WebConfig, WebConfigError, load_web_config

CHECK_EVERY = 1.0
"""Seconds between two looks at the files' modification times."""

Stamp = tuple[tuple[str, int, int], ...]
"""(path, mtime in ns, size) of the config file and of each file it names; -1s for a missing file."""


class WebConfigWatch:
    def __init__(self, config: WebConfig, *, loader: Callable[[Path], WebConfig] = load_web_config,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._loader = loader
        self._clock = clock
        self._stamp = _stamp(config)
        self._looked = clock()
        self._refused: Stamp | None = None
        self._outer: ssl.SSLContext | None = None
        self._log = logs.get_logger("callmeter.webconfig")

    def current(self) -> WebConfig:
        now = self._clock()
        if now - self._looked >= CHECK_EVERY:
            self._looked = now
            stamp = _stamp(self._config)
            if stamp != self._stamp and stamp != self._refused:
                self._reload(stamp)
        return self._config

    def _reload(self, stamp: Stamp) -> None:
        try:
            config = self._loader(self._config.path)
        except WebConfigError as exc:
            self._refuse(stamp, str(exc))
            return
        if (config.tls is None) != (self._config.tls is None):
            self._refuse(stamp, f"web config {config.path}: turning TLS on or off needs a restart")
            return
        self._config, self._stamp, self._refused = config, _stamp(config), None
        self._log.info("webconfig.reloaded", path=str(config.path), tls=config.tls is not None,
                       basic_auth_users=len(config.users))

    def _refuse(self, stamp: Stamp, reason: str) -> None:
        self._refused = stamp  # logged once per version of the files, not once per request
        self._log.error("webconfig.reload_failed", error=reason, hint="the last good web config stays in force")

    def authorize(self, header: str | None) -> bool:
        """Basic auth as the current config says (everything passes when it names no users)."""
        return self.current().authorize(header)

    def ssl_context(self) -> ssl.SSLContext | None:
        """The listener's TLS context, or None for plain HTTP. It starts each handshake with the context
        of the config current at that moment (a renewed certificate serves from its next handshake on)."""
        first = self._config.ssl_context()
        if first is None:
            return None
        if self._outer is None:
            self._outer = first
            self._outer.sni_callback = self._pick_context
        return self._outer

    def _pick_context(self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
                      context: ssl.SSLContext) -> None:
        current = self.current().ssl_context()
        if current is not None and current is not context:
            connection.context = current


def _stamp(config: WebConfig) -> Stamp:
    paths = [config.path]
    if config.tls is not None:
        paths += [p for p in (config.tls.cert_file, config.tls.key_file, config.tls.client_ca_file) if p is not None]
    found = []
    for path in paths:
        try:
            info = path.stat()
            found.append((str(path), info.st_mtime_ns, info.st_size))
        except OSError:
            found.append((str(path), -1, -1))
    return tuple(found)
