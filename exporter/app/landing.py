"""The landing page at /: what the exporter is doing, in a form a person reads at a glance.

It says when the data is the demo's (simulated, not an account's), whether the API can be used and,
when it cannot, why (the error's kind and message, with secrets redacted), the budget, and each
resource's last success and interval. Built from values, so it is tested without a server.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass

from .. import __version__


@dataclass(frozen=True, slots=True, kw_only=True)
class LandingFacts:
    up: bool | None
    down_reason: str | None
    demo: bool
    budget_per_minute: float
    rate_per_minute: float
    stretched: tuple[str, ...]
    telemetry_path: str
    resources: tuple[str, ...]
    last_success: Mapping[str, float]
    intervals: Mapping[str, float]
    now: float


def landing_page(facts: LandingFacts) -> str:
    rows = []
    for resource in facts.resources:
        at = facts.last_success.get(resource)
        age = f"{facts.now - at:.0f} s ago" if at else "never"
        interval = facts.intervals.get(resource)
        rows.append(f"<tr><td>{resource}</td><td>{age}</td><td>{f'{interval:.0f} s' if interval else '-'}"
                    "</td></tr>")
    up = {True: "up", False: "DOWN", None: "starting"}[facts.up]
    reason = f" ({html.escape(facts.down_reason)})" if facts.up is False and facts.down_reason else ""
    demo = ("<p><b>Demo:</b> these are simulated data from the built-in CallMeter simulator, not an "
            "account's. Run without --demo, with an API key, for your own.</p>") if facts.demo else ""
    path = html.escape(facts.telemetry_path)
    stretched = ", ".join(facts.stretched) or "none"
    return (
        "<!doctype html><html><head><title>CallMeter exporter</title></head><body>"
        f"<h1>CallMeter exporter {html.escape(__version__)}</h1>{demo}"
        f"<p>API: <b>{up}</b>{reason} &middot; budget {facts.budget_per_minute:.1f} requests/min, "
        f"now {facts.rate_per_minute:.1f}/min &middot; intervals stretched: {html.escape(stretched)}</p>"
        f'<p><a href="{path}">Metrics</a> &middot; <a href="/healthz">/healthz</a> &middot; '
        '<a href="/readyz">/readyz</a></p>'
        "<table border=1 cellpadding=4><tr><th>resource</th><th>last success</th><th>interval</th></tr>"
        + "".join(rows) + "</table></body></html>")
