"""callmeter-exporter health: up, API traffic against the request budget, errors, latency, freshness."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from .common import (
    EXPORTER,
    EXPORTER_UID,
    GREEN,
    ORANGE,
    PER_MIN,
    RED,
    REQ_PER_MIN,
    add_row,
    base_dashboard,
    fixed_colour,
    label_variable,
    query,
    stat_panel,
    thresholds,
    timeseries_panel,
    up_down_mappings,
)

Line = list[tuple[int, int, Builder[model.Panel]]]

REQUESTS = f"callmeter_exporter_api_requests_total{{{EXPORTER}}}"
ERRORS = f"callmeter_exporter_api_errors_total{{{EXPORTER}}}"
RATE_LIMITED = f"callmeter_exporter_rate_limited_total{{{EXPORTER}}}"
LAST_SUCCESS = f"callmeter_exporter_last_success_timestamp_seconds{{{EXPORTER}}}"
DURATION = "callmeter_exporter_api_request_duration_seconds"
OBSERVATION = "callmeter_exporter_observation_delay_seconds"


def build() -> dash.Dashboard:
    board = (
        base_dashboard("CallMeter exporter", EXPORTER_UID,
                       "Health of callmeter-exporter: API traffic against its request budget, errors, freshness.")
        .with_variable(
            label_variable("job", "Job", "label_values(callmeter_up, job)", "Prometheus job scraping the exporter")
        )
        .with_variable(
            label_variable(
                "instance",
                "Instance",
                'label_values(callmeter_up{job=~"$job"}, instance)',
                "Exporter instance",
            )
        )
    )
    board = add_row(board, "Health", [_health()])
    board = add_row(board, "Rate limit", _rate_limit())
    board = add_row(board, "API requests", _requests())
    board = add_row(board, "Freshness", [_freshness(), _observation()])
    board = add_row(board, "Webhooks", [_webhooks()])
    return add_row(board, "HTTP edge", [_edge()])


def _health() -> Line:
    up = (
        stat_panel(
            "Up",
            "callmeter_up: UP when the last refresh reached the CallMeter API and authenticated."
            " DOWN means a bad key, an unreachable API, or repeated failures: see API errors.",
            query(f"callmeter_up{{{EXPORTER}}}", legend="{{instance}}", instant=True),
        )
        .mappings(up_down_mappings())
        .color_mode(common.BigValueColorMode.BACKGROUND)
    )
    version = stat_panel(
        "Version",
        "Exporter version (callmeter_exporter_build_info).",
        query(f"callmeter_exporter_build_info{{{EXPORTER}}}", legend="{{version}}", instant=True),
    ).text_mode(common.BigValueTextMode.NAME)
    data_age = stat_panel(
        "Oldest data",
        "Time since the last successful refresh of the stalest resource.",
        query(f"max(time() - {LAST_SUCCESS})", legend="age", instant=True),
    ).unit("s")
    sent = stat_panel(
        "Requests per minute",
        "API requests sent per minute, averaged over 5 minutes.",
        query(f"sum(rate({REQUESTS}[5m])) * 60", legend="sent", instant=True),
    ).unit(REQ_PER_MIN)
    limited = (
        stat_panel(
            "429 answers in range",
            "Rate-limited (HTTP 429) answers in the selected time range. A few are expected after"
            " a plan change; a steady stream means the budget is set too high.",
            query(f"sum(increase({RATE_LIMITED}[$__range]))", legend="429", instant=True),
        )
        .decimals(0)
        .thresholds(thresholds(GREEN, (1, ORANGE)))
    )
    errors = (
        stat_panel(
            "API errors in range",
            "Failed API requests of any kind in the selected time range.",
            query(f"sum(increase({ERRORS}[$__range])) or vector(0)", legend="errors", instant=True),
        )
        .decimals(0)
        .thresholds(thresholds(GREEN, (1, RED)))
    )
    return [(4, 4, up), (4, 4, version), (4, 4, data_age), (4, 4, sent), (4, 4, limited), (4, 4, errors)]


def _rate_limit() -> list[Line]:
    budget = (
        timeseries_panel(
            "Requests per minute vs budget",
            "Requests sent per minute (5m average) against the budget the exporter allows itself"
            " (plan rate x budget share) and the rate it allows right now (lowered after 429"
            " answers, raised again slowly).",
            REQ_PER_MIN,
            query(f"sum by (instance) (rate({REQUESTS}[5m])) * 60", legend="sent {{instance}}", ref="A"),
            query(
                f"max by (instance) (callmeter_exporter_request_budget_per_minute{{{EXPORTER}}})",
                legend="budget {{instance}}",
                ref="B",
            ),
            query(
                f"max by (instance) (callmeter_exporter_requests_per_minute{{{EXPORTER}}})",
                legend="allowed now {{instance}}",
                ref="C",
            ),
        )
        .min(0)
        .override_by_query("B", fixed_colour(RED))
        .override_by_query("C", fixed_colour(ORANGE))
    )
    remaining = timeseries_panel(
        "Rate limit remaining",
        "Requests left in the current window, as reported by the API's rate-limit headers"
        " (no data when the API sends none).",
        "short",
        query(f"callmeter_exporter_rate_limit_remaining{{{EXPORTER}}}", legend="{{instance}}"),
    ).min(0)
    limited = (
        timeseries_panel(
            "429 answers per minute",
            "Rate-limited (HTTP 429) answers per minute (callmeter_exporter_rate_limited_total).",
            PER_MIN,
            query(f"sum by (instance) (rate({RATE_LIMITED}[$__rate_interval])) * 60", legend="{{instance}}"),
        )
        .min(0)
        .override_by_query("A", fixed_colour(ORANGE))
    )
    errors = timeseries_panel(
        "API errors by kind",
        "Failed API requests per minute by kind: unauthorized, forbidden, not_found, rate_limited,"
        " server_error, client_error, timeout, connection, invalid_response.",
        PER_MIN,
        query(f"sum by (error) (rate({ERRORS}[$__rate_interval])) * 60", legend="{{error}}"),
    ).min(0)
    return [[(12, 8, budget), (12, 8, remaining)], [(12, 8, limited), (12, 8, errors)]]


def _requests() -> list[Line]:
    by_code = timeseries_panel(
        "API requests by endpoint and code",
        "Requests per minute to each CallMeter API route by HTTP status (code=error when no response arrived).",
        REQ_PER_MIN,
        query(
            f"sum by (endpoint, code) (rate({REQUESTS}[$__rate_interval])) * 60",
            legend="{{code}} {{endpoint}}",
        ),
    ).min(0)
    buckets = f"rate({DURATION}_bucket{{{EXPORTER}}}[$__rate_interval])"
    by_endpoint = timeseries_panel(
        "API latency p95 by endpoint",
        "95th percentile of CallMeter API request duration per route.",
        "s",
        query(f"histogram_quantile(0.95, sum by (endpoint, le) ({buckets}))", legend="{{endpoint}}"),
    ).min(0)
    overall = timeseries_panel(
        "API latency, all endpoints",
        "Median, 95th and 99th percentile and mean of CallMeter API request duration.",
        "s",
        query(f"histogram_quantile(0.5, sum by (le) ({buckets}))", legend="p50", ref="A"),
        query(f"histogram_quantile(0.95, sum by (le) ({buckets}))", legend="p95", ref="B"),
        query(f"histogram_quantile(0.99, sum by (le) ({buckets}))", legend="p99", ref="C"),
        query(
            f"sum(rate({DURATION}_sum{{{EXPORTER}}}[$__rate_interval]))"
            f" / sum(rate({DURATION}_count{{{EXPORTER}}}[$__rate_interval]))",
            legend="mean",
            ref="D",
        ),
    ).min(0)
    return [[(24, 8, by_code)], [(12, 8, by_endpoint), (12, 8, overall)]]


def _freshness() -> Line:
    interval = timeseries_panel(
        "Refresh interval per resource",
        "How often the exporter's schedule manages to refresh each resource within the request"
        " budget (callmeter_exporter_refresh_interval_seconds).",
        "s",
        query(f"callmeter_exporter_refresh_interval_seconds{{{EXPORTER}}}", legend="{{resource}}"),
    ).min(0)
    age = timeseries_panel(
        "Data age per resource",
        "Time since the last successful refresh of each resource. It should stay near the refresh"
        " interval; a steady climb means that resource is failing to refresh.",
        "s",
        query(f"time() - {LAST_SUCCESS}", legend="{{resource}}"),
    ).min(0)
    pending = timeseries_panel(
        "Run details pending",
        "Finished runs whose quality summary the exporter wants and has not fetched yet, at most one per"
        " test. A level near the number of tests means the budget leaves run details only idle slots.",
        "short",
        query(f"callmeter_exporter_run_details_pending{{{EXPORTER}}}", legend="pending"),
    ).min(0)
    capped = timeseries_panel(
        "Label values capped",
        "Label values folded into _other or UNRECOGNIZED because a cardinality cap was reached, per family, in"
        " each interval (increase of callmeter_exporter_series_capped_total). Above 0: a test has more groups"
        " or undocumented outcomes than the exporter keeps; its log line cardinality.capped names it.",
        "short",
        query(f"sum by (family) (increase(callmeter_exporter_series_capped_total{{{EXPORTER}}}[$__rate_interval]))",
              legend="{{family}}"),
    ).min(0)
    return [(6, 8, interval), (6, 8, age), (6, 8, pending), (6, 8, capped)]


def _webhooks() -> Line:
    deliveries = timeseries_panel(
        "Webhook deliveries by result",
        "probe.status_changed deliveries a minute by what the receiver did with them (applied, replay,"
        " bad_signature, ...). Empty while the receiver is off.",
        REQ_PER_MIN,
        query(f"sum by (result) (rate(callmeter_exporter_webhook_deliveries_total{{{EXPORTER}}}[$__rate_interval]))"
              " * 60", legend="{{result}}"),
    ).min(0)
    confirmed = timeseries_panel(
        "Webhook to poll agreement",
        "Time from a delivery to the probe-list read that agreed with it (p50, p95), and reads that"
        " disagreed a minute: the poll decides, so a steady disagreement means the webhooks say"
        " something the API does not.",
        "s",
        query("histogram_quantile(0.5, sum by (le) (rate("
              f"callmeter_exporter_webhook_confirmation_delay_seconds_bucket{{{EXPORTER}}}[$__rate_interval])))",
              legend="p50", ref="A"),
        query("histogram_quantile(0.95, sum by (le) (rate("
              f"callmeter_exporter_webhook_confirmation_delay_seconds_bucket{{{EXPORTER}}}[$__rate_interval])))",
              legend="p95", ref="B"),
        query(f"rate(callmeter_exporter_webhook_disagreements_total{{{EXPORTER}}}[$__rate_interval]) * 60",
              legend="disagreements a minute", ref="C"),
    ).min(0)
    last = timeseries_panel(
        "Time since the last webhook delivery",
        "Seconds since the receiver last took a delivery. CallMeter sends one only when a probe's"
        " status changes, so long quiet spells are normal.",
        "s",
        query(f"time() - callmeter_exporter_webhook_last_delivery_timestamp_seconds{{{EXPORTER}}}", legend="age"),
    ).min(0)
    return [(8, 8, deliveries), (8, 8, confirmed), (8, 8, last)]


def _observation() -> Line:
    buckets = f"rate({OBSERVATION}_bucket{{{EXPORTER}}}[$__rate_interval])"
    quantiles = timeseries_panel(
        "Observation delay",
        "How long after CallMeter says something happened the exporter had it: a probe's new execution"
        " (lastExecutionAt) or a finished run's result (completedAt; for a completed run, its summary)."
        " Median and 95th percentile per resource (callmeter_exporter_observation_delay_seconds). With"
        " CALLMETER_SCHEDULE=adaptive it is seconds where the budget pays for a read per execution; a"
        " constant offset of CallMeter's clock shows here too.",
        "s",
        query(f"histogram_quantile(0.5, sum by (resource, le) ({buckets}))", legend="p50 {{resource}}", ref="A"),
        query(f"histogram_quantile(0.95, sum by (resource, le) ({buckets}))", legend="p95 {{resource}}", ref="B"),
    ).min(0)
    observed = timeseries_panel(
        "Observations per minute",
        "Probe executions and finished runs the exporter saw, per minute: what the observation delay is"
        " measured on.",
        PER_MIN,
        query(f"sum by (resource) (rate({OBSERVATION}_count{{{EXPORTER}}}[$__rate_interval])) * 60",
              legend="{{resource}}"),
    ).min(0)
    return [(16, 8, quantiles), (8, 8, observed)]


def _edge() -> Line:
    refused = timeseries_panel(
        "Requests refused by the HTTP edge",
        "Requests a minute the exporter's HTTP server refused, by listener and reason: malformed (a head the"
        " parser refused, no Host), header_too_large, body_too_large, header_timeout, body_timeout,"
        " too_many_connections (a connection closed to make room at the cap), handler_error. Prometheus and"
        " CallMeter send none of these: a steady level is a broken client or someone probing the port.",
        REQ_PER_MIN,
        query("sum by (listener, reason) (rate(callmeter_exporter_http_rejected_requests_total"
              f"{{{EXPORTER}}}[$__rate_interval])) * 60", legend="{{listener}} {{reason}}"),
    ).min(0)
    return [(24, 8, refused)]
