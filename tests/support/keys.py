"""API keys for tests: one that is well formed but unknown to the simulator, and fresh ones."""

from __future__ import annotations

import secrets

SECRET = "cmk_" + "5ec7e7" * 5 + "ab"  # a well-formed key that the simulator does not know


def new_key() -> str:
    return "cmk_" + secrets.token_hex(16)
