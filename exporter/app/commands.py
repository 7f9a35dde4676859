"""What the command line runs: the daemon, --once, --show-schedule, and the demo around any of them."""

from __future__ import annotations

import ssl
import sys
from collections.abc import Callable

from .. import logs
from ..expose.webconfig import WebConfigError, load_web_config
from ..expose.webwatch import WebConfigWatch
from ..settings import Settings, SettingsError
from .daemon import Exporter
from .demo import DEMO_FLOORS, start_demo
from .serve import serve


async def web_security(settings: Settings, exporter: Exporter
                       ) -> tuple[ssl.SSLContext | None, Callable[[str | None], bool] | None]:
    """TLS and basic auth from the web config file, if one is set; re-read when its files change."""
    if settings.web_config_file is None:
        return None, None
    try:
        watch = WebConfigWatch(load_web_config(settings.web_config_file))
    except WebConfigError as exc:
        await exporter.client.aclose()
        raise SettingsError(f"CALLMETER_WEB_CONFIG_FILE: {exc}") from None
    return watch.ssl_context(), watch.authorize


async def run(settings: Settings, *, once: bool = False, show_schedule: bool = False) -> int:
    demo = start_demo(settings) if settings.demo else None
    if demo is not None:
        settings = demo.settings
    try:
        exporter = Exporter.build(settings, key=demo.key if demo else None, floors=DEMO_FLOORS if demo else None)
        if once:
            return await exporter.once()
        if show_schedule:
            from .schedule_report import show_schedule as report

            return await report(exporter, sys.stdout)
        ssl_context, authorize = await web_security(settings, exporter)
        return await serve(exporter, ssl_context=ssl_context, authorize=authorize,
                           on_listening=(lambda port: demo.announce(exporter, port)) if demo else None)
    finally:
        if demo is not None:
            demo.server.stop()
        logs.forget_secrets()
