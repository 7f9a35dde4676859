"""The settings table of docs/configuration.md, from `exporter.settings.Settings`.

Names come from the code that makes them (`env_name`, and the flags `exporter.flags.add_setting`
registers, aliases included), so the table shows what the exporter accepts, not what we remember.
"""

from __future__ import annotations

import argparse
from typing import Any

from pydantic.fields import FieldInfo

from exporter.flags import add_setting
from exporter.settings import Settings, env_name

from .markdown import code, header, table

SECRETS = {"api_key", "webhook_secret"}


def flags_of(name: str) -> list[str]:
    """Every flag that sets `name`, as the daemon's command line registers them."""
    parser = argparse.ArgumentParser(add_help=False)
    add_setting(parser, name)
    (action,) = parser._actions
    return list(action.option_strings)


def default_of(name: str, field: FieldInfo) -> str:
    value: Any = field.default
    if name in SECRETS or value is None:
        return "none"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return code(value)


def choices_of(field: FieldInfo) -> list[str]:
    args = getattr(field.annotation, "__args__", ())
    return list(args) if args and all(isinstance(a, str) for a in args) else []


def rows() -> list[list[str]]:
    out = []
    for name, field in Settings.model_fields.items():
        description = field.description or ""
        choices = choices_of(field)
        if choices:
            description += f" One of: {', '.join(code(c) for c in choices)}."
        anchor = name.replace("_", "-")
        out.append([f'<span id="{anchor}"></span>{code(env_name(name))}',
                    ", ".join(code(f) for f in flags_of(name)), default_of(name, field), description])
    return out


def render() -> str:
    return header("docs/generate.py", "exporter/settings.py") + table(
        ["Variable", "Flag", "Default", "What it sets"], rows())
