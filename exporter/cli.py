"""Command line: every setting as a flag (flags win over CALLMETER_* variables), --once, --show-schedule,
and the `gate` subcommand (exporter.gate), which the daemon never imports."""

from __future__ import annotations

import argparse
import asyncio
import sys

from . import __version__, logs
from .flags import Parser, add_setting, setting_overrides
from .settings import Settings, SettingsError, load

EXIT_BAD_SETTING = 2


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="callmeter-exporter",
        description="Prometheus exporter for CallMeter. Polls the CallMeter API in the background within the "
                    "key's rate limit and serves cached probe health and call quality on /metrics.",
        epilog="Every flag can also be set by the environment variable shown; a flag wins over its variable. "
               "`callmeter-exporter gate --help`: the CI/CD quality gate (triggers a test run or a probe "
               "execution and judges it).")
    parser.add_argument("--version", action="version", version=f"callmeter-exporter {__version__}")
    parser.add_argument("--once", action="store_true",
                        help="one complete refresh, print the exposition to stdout, exit 0 (read) or 1 (not read)")
    parser.add_argument("--show-schedule", action="store_true",
                        help="read the inventory once and print the refresh interval the budget allows per resource")
    for name in Settings.model_fields:
        add_setting(parser, name)
    return parser


def _fail(message: str) -> int:
    print(f"callmeter-exporter: {message}", file=sys.stderr)
    return EXIT_BAD_SETTING


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["gate"]:
        from .gate.command import main as gate_main  # the daemon never loads the gate (nor its writes)

        return gate_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = setting_overrides(args)
    try:
        settings = load(overrides)
    except SettingsError as exc:
        return _fail(str(exc))
    logs.configure(level=settings.log_level, fmt=settings.log_format)
    from .app.commands import run  # imported late: keeps --help and bad settings instant

    try:
        return asyncio.run(run(settings, once=args.once, show_schedule=args.show_schedule))
    except SettingsError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
