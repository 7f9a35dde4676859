"""Where the API key comes from: a literal value, or a file re-read when it changes (secret rotation).

The file is checked (one `stat`) before every request and read again when its inode, size or
modification time moved, which covers an editor's rewrite, `mv` of a new file and the symlink swap
Kubernetes does for a mounted Secret. A file that goes missing or holds no usable key keeps the last
good key in use and says so once, not on every request.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import logs
from ..settings import SettingsError, read_key_file


def _sendable(key: str, source: str) -> str:
    """The key, when it can travel in an HTTP header (printable ASCII); never echoed in the error."""
    if not key.isascii() or not key.isprintable():
        raise SettingsError(f"{source}: the key holds characters that cannot be sent in an HTTP header; "
                            "expected cmk_ followed by letters and digits")
    return key


class KeySource:
    def __init__(self, *, value: str | None = None, path: Path | None = None) -> None:
        if value is None and path is None:
            raise ValueError("a key value or a key file is needed")
        self._path = path
        self._stamp: tuple[int, int, int] | None = None
        self._broken = False
        self._key = _sendable(value, "CALLMETER_API_KEY") if value else ""
        if value:
            logs.register_secret(value)
        if path is not None:
            self._reload()

    @staticmethod
    def _stamp_of(stat: os.stat_result) -> tuple[int, int, int]:
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def _reload(self) -> None:
        assert self._path is not None
        stat = os.stat(self._path)
        key = read_key_file(self._path)
        logs.register_secret(key)
        _sendable(key, f"CALLMETER_API_KEY_FILE: {self._path}")
        if self._key and key != self._key:
            logs.get_logger().info("api_key.reloaded", path=str(self._path))
        self._key, self._stamp = key, self._stamp_of(stat)

    def get(self) -> str:
        """The current key; a changed file is read again, a broken one keeps the last good key."""
        if self._path is not None:
            try:
                if self._stamp_of(os.stat(self._path)) != self._stamp:
                    self._reload()
            except (OSError, SettingsError) as exc:
                if not self._broken:
                    self._broken = True
                    logs.get_logger().warning("api_key.unreadable", path=str(self._path),
                                              error=logs.redact_text(str(exc)),
                                              hint="the last good key stays in use until the file is fixed")
            else:
                if self._broken:
                    self._broken = False
                    logs.get_logger().info("api_key.readable", path=str(self._path))
        return self._key
