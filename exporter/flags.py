"""Settings as command-line flags: one flag per setting, its variable and default in the help.

Shared by the daemon's command line (`cli`) and the gate's (`gate.options`); a flag given wins over
its CALLMETER_* variable.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn, get_args

from .settings import Settings, env_name, flag_name

_BOOLEAN_FLAGS = {"demo"}
_ALIASES = {"web_config_file": ["--web.config.file"], "listen_address": ["--web.listen-address"],
            "telemetry_path": ["--web.telemetry-path"]}


class Parser(argparse.ArgumentParser):
    """A command line whose mistakes cost one line, as a bad CALLMETER_* variable does, and exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (--help lists every flag)", file=sys.stderr)
        sys.exit(2)


def add_setting(parser: argparse._ActionsContainer, name: str, description: str | None = None,
                default: object = None) -> None:
    """The flag of one setting, its variable and default in the help; None unless given (flags win).
    `description` and `default` replace the setting's own in the help (the gate uses a few differently)."""
    field = Settings.model_fields[name]
    default = field.default if default is None else default
    shown = "none" if default in (None, "") else default
    if name in ("api_key", "webhook_secret"):
        shown = "none (secret; prefer the file)"
    choices = _choices(field.annotation)
    one_of = f" One of: {', '.join(choices)}." if choices else ""
    help_text = f"{description or field.description}{one_of} [env {env_name(name)}; default {shown}]"
    flags = [flag_name(name), *_ALIASES.get(name, [])]
    if name in _BOOLEAN_FLAGS:
        parser.add_argument(*flags, dest=name, action="store_const", const=True, default=None, help=help_text)
        return
    parser.add_argument(*flags, dest=name, default=None, metavar=name.upper(), help=help_text, choices=choices)


def setting_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags, to lay over the CALLMETER_* variables."""
    return {k: v for k, v in vars(args).items() if k in Settings.model_fields and v is not None}


def _choices(annotation: Any) -> list[str] | None:
    args = get_args(annotation)
    return list(args) if args and all(isinstance(a, str) for a in args) else None
