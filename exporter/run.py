"""What the command line runs: the daemon, --once, --show-schedule, and the demo around any of them."""

from __future__ import annotations

import secrets
import sys

from pydantic import SecretStr

from . import logs
from .daemon import DEMO_FLOORS, DEMO_KEY_LIMIT, Exporter, serve
from .keysource import KeySource
from .settings import Settings, SettingsError, read_webhook_secrets


def demo_webhook_secret(settings: Settings) -> str:
    """The secret the demo's simulator signs its webhooks with: the one set, or a fresh one."""
    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value()
    if settings.webhook_secret_file is not None:
        return read_webhook_secrets(settings.webhook_secret_file)[0]
    return secrets.token_hex(24)


async def run(settings: Settings, *, once: bool = False, show_schedule: bool = False) -> int:
    simulator = None
    key = None
    floors = None
    webhook_secret = ""
    if settings.demo:
        from .simulator import DEMO_KEY, Simulator, SimulatorServer, WorldConfig

        world = WorldConfig(run_period=60.0, run_duration=20.0, probe_interval_minutes=1.0)
        sim = Simulator(world, rate_limit_per_minute=DEMO_KEY_LIMIT)
        # A little realism: rate-limit headers, and an occasional 500 the client retries through.
        sim.set_faults(rate_limit_headers=True, error_rate=0.02)
        simulator = SimulatorServer(sim).start()
        if settings.state_file is not None:
            logs.get_logger().info("state.not_used", path=str(settings.state_file),
                                   hint="--demo starts a new simulated account each time: nothing to keep")
        webhook_secret = demo_webhook_secret(settings)
        update: dict[str, object] = {"base_url": simulator.base_url, "plan": "enterprise",
                                     "requests_per_minute": DEMO_KEY_LIMIT, "state_file": None}
        if not settings.webhooks_enabled:
            update["webhook_secret"] = SecretStr(webhook_secret)
        settings = settings.model_copy(update=update)
        key = KeySource(value=DEMO_KEY)
        floors = DEMO_FLOORS
    try:
        exporter = Exporter.build(settings, key=key, floors=floors)
        if once:
            return await exporter.once()
        if show_schedule:
            from .schedule_report import show_schedule as report

            return await report(exporter, sys.stdout)

        def announce(port: int) -> None:
            if simulator is not None:
                host = settings.host_port[0] or "127.0.0.1"
                # The simulator's probe webhooks go to the exporter's own receiver, signed with its secret.
                simulator.simulator.webhooks.configure(url=exporter.webhook_url, secret=webhook_secret,
                                                       signature_header=settings.webhook_signature_header,
                                                       verify_tls=False)
                print(f"callmeter-exporter demo: simulated CallMeter API at {simulator.base_url}\n"
                      f"  metrics at http://{host}:{port}{settings.telemetry_path} (landing page: "
                      f"http://{host}:{port}/); every metric family appears within 30 s. Ctrl-C stops.\n"
                      f"  probe webhooks from the simulator to {exporter.webhook_url}",
                      file=sys.stderr, flush=True)

        ssl_context, authorize = None, None
        if settings.web_config_file is not None:
            from .webconfig import WebConfigError, load_web_config

            try:
                web = load_web_config(settings.web_config_file)
            except WebConfigError as exc:
                await exporter.client.aclose()
                raise SettingsError(f"CALLMETER_WEB_CONFIG_FILE: {exc}") from None
            ssl_context, authorize = web.ssl_context(), web.authorizer()
        return await serve(exporter, ssl_context=ssl_context, authorize=authorize, on_listening=announce)
    finally:
        if simulator is not None:
            simulator.stop()
        logs.forget_secrets()
