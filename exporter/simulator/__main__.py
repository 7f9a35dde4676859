"""Run the simulator alone: `python -m exporter.simulator --listen-address 127.0.0.1:8080`."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from .app import DEMO_KEY, Simulator
from .config import WorldConfig
from .http import SimulatorServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m exporter.simulator",
                                     description="CallMeter API v1 simulator (loopback only).")
    parser.add_argument("--listen-address", default="127.0.0.1:0", help="host:port (port 0: a free one)")
    parser.add_argument("--rate-limit", type=int, default=None, help="requests a minute per key (default: none)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--probe-intervals", default="",
                        help="mixed probe intervals in minutes, dealt in turn (e.g. 1,5,15); overrides the next")
    parser.add_argument("--probe-result-delay", type=float, default=4.0,
                        help="seconds from a probe execution to its result in the list (per probe +-1.5)")
    parser.add_argument("--clock-offset", type=float, default=0.0,
                        help="seconds the simulated CallMeter clock is ahead (negative: behind) in its timestamps")
    parser.add_argument("--projects", type=int, default=2)
    parser.add_argument("--probes", type=int, default=3, help="probes per project")
    parser.add_argument("--tests", type=int, default=4, help="tests per project")
    parser.add_argument("--run-period", type=float, default=60.0, help="seconds between runs of one test")
    parser.add_argument("--run-duration", type=float, default=20.0)
    parser.add_argument("--probe-interval-minutes", type=float, default=1.0)
    parser.add_argument("--webhook-url", default=None,
                        help="send signed probe.status_changed webhooks here (also: POST /_sim/webhooks)")
    parser.add_argument("--webhook-secret", default="", help="the secret that signs them")
    args = parser.parse_args(argv)
    host, _, port = args.listen_address.rpartition(":")
    config = WorldConfig(seed=args.seed, projects=args.projects, probes_per_project=args.probes,
                         tests_per_project=args.tests, run_period=args.run_period, run_duration=args.run_duration,
                         probe_interval_minutes=args.probe_interval_minutes,
                         probe_intervals=tuple(float(m) for m in args.probe_intervals.split(",") if m.strip()),
                         probe_result_delay=args.probe_result_delay, clock_offset=args.clock_offset)
    server = SimulatorServer(Simulator(config, rate_limit_per_minute=args.rate_limit), host or "127.0.0.1",
                             int(port)).start()
    if args.webhook_url:
        server.simulator.webhooks.configure(url=args.webhook_url, secret=args.webhook_secret)
    # One JSON line on stdout tells a parent process where to connect.
    print(json.dumps({"base_url": server.base_url, "port": server.port, "key": DEMO_KEY}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
