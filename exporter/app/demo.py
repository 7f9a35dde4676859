"""The demo: the built-in CallMeter simulator on loopback, and the settings that point the exporter at it."""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass

from pydantic import SecretStr

from .. import logs
from ..api.keysource import KeySource
from ..settings import DEFAULT_PORT, Floors, Settings, read_webhook_secrets
from ..simulator import DEMO_KEY, DEMO_KEY_LIMIT, Simulator, SimulatorServer, WorldConfig
from .daemon import Exporter

DEMO_SEED = 45
DEMO_FLOORS = Floors(probes=5.0, test_runs=5.0, inventory=20.0)
"""The demo's simulated account changes every few seconds, and its key allows DEMO_KEY_LIMIT a minute."""


def demo_webhook_secret(settings: Settings) -> str:
    """The secret the demo's simulator signs its webhooks with: the one set, or a fresh one."""
    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value()
    if settings.webhook_secret_file is not None:
        return read_webhook_secrets(settings.webhook_secret_file)[0]
    return secrets.token_hex(24)


@dataclass
class Demo:
    """The built-in simulator the demo runs against, and what the exporter needs to use it."""

    server: SimulatorServer
    settings: Settings
    key: KeySource
    webhook_secret: str

    def announce(self, exporter: Exporter, port: int) -> None:
        settings, server = self.settings, self.server
        host = settings.host_port[0] or "127.0.0.1"
        # The simulator's probe webhooks go to the exporter's own receiver, signed with its secret.
        server.simulator.webhooks.configure(url=exporter.webhook_url, secret=self.webhook_secret,
                                            signature_header=settings.webhook_signature_header, verify_tls=False)
        print(f"callmeter-exporter demo: simulated CallMeter API at {server.base_url}\n"
              f"  metrics at http://{host}:{port}{settings.telemetry_path} (landing page: "
              f"http://{host}:{port}/); every metric family appears within 30 s. Ctrl-C stops.\n"
              f"  probe webhooks from the simulator to {exporter.webhook_url}",
              file=sys.stderr, flush=True)


def start_demo(settings: Settings) -> Demo:
    """Start the simulator on loopback, and settings that point the exporter at it."""
    # Seed 45: an account whose probes change state in its first seconds (at 7, 10 and 19 s), so that
    # webhooks, like every other family, show within 30 s of the start (tests/e2e: the demo test).
    world = WorldConfig(run_period=60.0, run_duration=20.0, probe_interval_minutes=1.0, seed=DEMO_SEED)
    sim = Simulator(world, rate_limit_per_minute=DEMO_KEY_LIMIT)
    # A little realism: rate-limit headers, and an occasional 500 the client retries through.
    sim.set_faults(rate_limit_headers=True, error_rate=0.02)
    server = SimulatorServer(sim).start()
    if settings.state_file is not None:
        logs.get_logger().info("state.not_used", path=str(settings.state_file),
                               hint="--demo starts a new simulated account each time: nothing to keep")
    webhook_secret = demo_webhook_secret(settings)
    update: dict[str, object] = {"base_url": server.base_url, "plan": "enterprise",
                                 "requests_per_minute": DEMO_KEY_LIMIT, "state_file": None}
    if not settings.webhooks_enabled:
        update["webhook_secret"] = SecretStr(webhook_secret)
    if "listen_address" not in settings.model_fields_set:
        # A demo is looked at from this machine: loopback, unless an address is given (the image gives one).
        update["listen_address"] = f"127.0.0.1:{DEFAULT_PORT}"
    return Demo(server, settings.model_copy(update=update), KeySource(value=DEMO_KEY), webhook_secret)
