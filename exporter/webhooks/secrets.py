"""Where the webhook secrets come from: one value, or a file of them re-read when it changes.

CallMeter generates a secret per probe webhook, so a file may hold several, one a line; a delivery
signed with any of them is accepted. As with the API key file (`keysource`), the file is checked with
one `stat` per delivery and read again when its inode, size or modification time moved (an editor's
rewrite, `mv`, the symlink swap of a mounted Kubernetes Secret). A file that goes missing or holds
no usable secret keeps the last good secrets in use and says so once.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import logs
from ..settings import SettingsError, check_webhook_secret, read_webhook_secrets


class WebhookSecrets:
    def __init__(self, *, value: str | None = None, path: Path | None = None) -> None:
        if value is None and path is None:
            raise ValueError("a webhook secret or a secret file is needed")
        self._path = path
        self._stamp: tuple[int, int, int] | None = None
        self._broken = False
        self._secrets: tuple[bytes, ...] = ()
        if value is not None:
            check_webhook_secret(value)
            logs.register_secret(value)
            self._secrets = (value.encode(),)
        if path is not None:
            self._reload()

    def _reload(self) -> None:
        assert self._path is not None
        stat = os.stat(self._path)
        secrets = read_webhook_secrets(self._path)
        for secret in secrets:
            logs.register_secret(secret)
        encoded = tuple(s.encode() for s in secrets)
        if self._secrets and encoded != self._secrets:
            logs.get_logger("callmeter.webhooks").info("webhook_secrets.reloaded", path=str(self._path),
                                                       secrets=len(encoded))
        self._secrets, self._stamp = encoded, (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def current(self) -> tuple[bytes, ...]:
        """The secrets in use; a changed file is read again, a broken one keeps the last good secrets."""
        if self._path is None:
            return self._secrets
        log = logs.get_logger("callmeter.webhooks")
        try:
            stat = os.stat(self._path)
            if (stat.st_ino, stat.st_mtime_ns, stat.st_size) != self._stamp:
                self._reload()
        except (OSError, SettingsError) as exc:
            if not self._broken:
                self._broken = True
                log.warning("webhook_secrets.unreadable", path=str(self._path), error=logs.redact_text(str(exc)),
                            hint="the last good secrets stay in use until the file is fixed")
        else:
            if self._broken:
                self._broken = False
                log.info("webhook_secrets.readable", path=str(self._path))
        return self._secrets
