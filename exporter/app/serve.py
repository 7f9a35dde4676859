"""Serving: the HTTP listeners started, the poller run, and both stopped on SIGTERM or SIGINT.

One listener ("main") serves /metrics, the landing page, the probes and, unless it has an address of
its own, the webhook receiver; given CALLMETER_WEBHOOK_LISTEN_ADDRESS, a second one ("webhooks")
serves the receiver and /healthz alone, for an Ingress, and /metrics is never on it.
"""

from __future__ import annotations

import asyncio
import resource
import signal
import ssl
from collections.abc import Callable
from typing import Any

from .. import __version__, logs
from ..expose.edge import EdgeLimits, descriptors, quiet_library_loggers
from ..expose.listener import HttpListener
from ..settings import Settings, parse_listen_address
from .daemon import Exporter, listener_names

SPARE_DESCRIPTORS = 256
"""File descriptors kept for everything but client connections (the API client, the state file, logs)."""


def limits_of(settings: Settings) -> EdgeLimits:
    return EdgeLimits(max_connections=settings.web_max_connections, header_timeout=settings.web_header_timeout,
                      idle_timeout=settings.web_idle_timeout, body_timeout=settings.webhook_body_timeout)


def listeners(exporter: Exporter, ssl_context: ssl.SSLContext | None,
              authorize: Callable[[str | None], bool] | None) -> list[tuple[str, HttpListener]]:
    """(address, listener): the main one, with the receiver on it or, given its own address, beside it
    (as `listener_names` says, which named the edge's counters)."""
    settings, receiver = exporter.settings, exporter.receiver
    alone = "webhooks" in listener_names(settings)

    def listener(name: str, **only: Any) -> HttpListener:
        return HttpListener(name, exposition=exporter.exposition, is_ready=exporter.poller.readiness.ready.is_set,
                            landing=exporter.landing_page, rejections=exporter.rejections,
                            limits=limits_of(settings), ssl_context=ssl_context, webhook_path=settings.webhook_path,
                            **only)

    found = [(settings.listen_address, listener("main", telemetry_path=settings.telemetry_path, authorize=authorize,
                                                receiver=None if alone else receiver))]
    if alone and settings.webhook_listen_address is not None:
        found.append((settings.webhook_listen_address, listener("webhooks", receiver=receiver, metrics=False)))
    return found


def raise_descriptor_limit(wanted: int) -> None:
    """Lift the soft limit on open files to what the connection caps need, if the hard limit allows;
    else say which setting to lower (a process out of descriptors stops answering /metrics)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted or soft == resource.RLIM_INFINITY:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        logs.get_logger().warning("server.descriptors", wanted=wanted, limit=target,
                                  hint="the open-files limit is below what CALLMETER_WEB_MAX_CONNECTIONS allows: "
                                       "lower it, or raise the limit (ulimit -n)")


async def start(exporter: Exporter, found: list[tuple[str, HttpListener]], tls: bool) -> bool:
    """Start every listener and log where; on a failure, close those started and say why."""
    log = logs.get_logger()
    settings = exporter.settings
    quiet_library_loggers()
    raise_descriptor_limit(len(found) * descriptors(limits_of(settings)) + SPARE_DESCRIPTORS)
    started: list[HttpListener] = []
    for address, listener in found:
        try:
            await listener.start(*parse_listen_address(address))
        except OSError as exc:
            log.error("server.listen_failed", address=address, error=str(exc))
            for running in started:
                await running.close()
            return False
        started.append(listener)
    host = settings.host_port[0]
    log.info("server.listening", address=f"{host or '0.0.0.0'}:{found[0][1].port}", path=settings.telemetry_path,
             budget_per_minute=exporter.metrics.budget_per_minute, version=__version__)
    if exporter.receiver is not None:
        address, listener = found[-1]
        hook_host = parse_listen_address(address)[0]
        scheme = "https" if tls else "http"
        exporter.webhook_url = f"{scheme}://{hook_host or '127.0.0.1'}:{listener.port}{settings.webhook_path}"
        log.info("webhooks.listening", address=f"{hook_host or '0.0.0.0'}:{listener.port}",
                 path=settings.webhook_path, signature_header=settings.webhook_signature_header)
    return True


async def serve(exporter: Exporter, *, ssl_context: ssl.SSLContext | None = None,
                authorize: Callable[[str | None], bool] | None = None,
                on_listening: Callable[[int], None] | None = None) -> int:
    """Poll and serve until SIGTERM or SIGINT; return the exit code."""
    found = listeners(exporter, ssl_context, authorize)
    if not await start(exporter, found, ssl_context is not None):
        await exporter.client.aclose()
        return 2
    log = logs.get_logger()
    if on_listening is not None:
        on_listening(found[0][1].port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    poll = asyncio.create_task(exporter.poller.run(), name="callmeter-poller")
    keeper = asyncio.create_task(exporter.keep_state(), name="callmeter-state")
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({poll, stopper}, return_when=asyncio.FIRST_COMPLETED)
    log.info("exporter.stopping")
    for task in (poll, keeper, stopper):
        task.cancel()
    await asyncio.gather(poll, keeper, stopper, return_exceptions=True)
    await exporter.save_state()
    for _, listener in found:
        await listener.close()
    await exporter.client.aclose()
    log.info("exporter.stopped")
    return 0
