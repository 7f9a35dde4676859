"""Where the API key comes from: a literal value, or a file re-read when it changes (secret rotation)."""

from __future__ import annotations

import os
from pathlib import Path

from . import logs
from .settings import SettingsError, read_key_file


class KeySource:
    def __init__(self, *, value: str | None = None, path: Path | None = None) -> None:
        if value is None and path is None:
            raise ValueError("a key value or a key file is needed")
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._key = value or ""
        if value:
            logs.register_secret(value)
        if path is not None:
            self._reload()

    def _reload(self) -> None:
        assert self._path is not None
        stat = os.stat(self._path)
        key = read_key_file(self._path)
        logs.register_secret(key)
        if self._key and key != self._key:
            logs.get_logger().info("api_key.reloaded", path=str(self._path))
        self._key, self._stamp = key, (stat.st_mtime_ns, stat.st_size)

    def get(self) -> str:
        """The current key; a changed file is read again, a broken one keeps the last good key."""
        if self._path is not None:
            try:
                stat = os.stat(self._path)
                if (stat.st_mtime_ns, stat.st_size) != self._stamp:
                    self._reload()
            except (OSError, SettingsError) as exc:
                logs.get_logger().warning("api_key.unreadable", path=str(self._path), error=str(exc))
        return self._key
