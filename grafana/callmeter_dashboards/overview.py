"""CallMeter overview: probe health, call quality per test, latest runs, inventory."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig, StackingConfig
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from .common import (
    EXPORTER_UID,
    GREEN,
    GREY,
    ORANGE,
    OVERVIEW_UID,
    PROBE_STATES,
    PROBES,
    PROJECT,
    RED,
    RUN_STATES,
    TESTS,
    add_row,
    base_dashboard,
    cell_colour,
    dashboard_link,
    fixed_colour,
    label_variable,
    query,
    stat_panel,
    state_code_expr,
    state_mappings,
    state_timeline_panel,
    table_panel,
    thresholds,
    timeseries_panel,
    unit,
    up_down_mappings,
)

CACHED = " Values are cached by the exporter, which polls the CallMeter API in the background within the rate limit."
LATEST_COMPLETED = " From the latest COMPLETED run of each test." + CACHED



def mos_cell() -> list[model.DynamicConfigValue]:
    """A MOS table cell: two decimals, coloured red below 3.5, orange below 4, else green."""
    return [
        model.DynamicConfigValue(id_val="decimals", value=2),
        model.DynamicConfigValue(id_val="thresholds", value=thresholds(RED, (3.5, ORANGE), (4.0, GREEN)).build()),
        cell_colour(common.TableCellDisplayMode.COLOR_TEXT),
    ]

def build() -> dash.Dashboard:
    board = (
        base_dashboard("CallMeter overview", OVERVIEW_UID,
                       "CallMeter probe health and SIP call quality, from callmeter-exporter.")
        .with_variable(
            label_variable(
                "project",
                "Project",
                "label_values(callmeter_project_info, project)",
                "CallMeter project (slug)",
            )
        )
        .with_variable(
            label_variable(
                "test",
                "Test",
                'label_values(callmeter_test_run_last_status{project=~"$project"}, test)',
                "CallMeter test (display name)",
            )
        )
        .with_variable(
            label_variable(
                "probe",
                "Probe",
                'label_values(callmeter_probe_status{project=~"$project"}, probe)',
                "CallMeter probe (display name)",
            )
        )
    )
    board = add_row(board, "Summary", [_summary()])
    board = add_row(
        board,
        "Probe health",
        [[(24, 8, _probe_timeline())], [(24, 8, _probe_table())], [(24, 7, _probe_thresholds())]],
    )
    board = add_row(board, "Call quality", _call_quality())
    board = add_row(
        board,
        "Test runs",
        [
            [(24, 8, _latest_runs())],
            [(12, 8, _run_timeline()), (12, 8, _finished_runs())],
            [(24, 8, _failed_endpoints())],
        ],
    )
    board = add_row(board, "CI quality gates", [[(24, 6, _gates())]])
    return add_row(
        board, "Inventory", [[(8, 7, _projects()), (16, 7, _registrars())], [(24, 7, _test_settings())]]
    )


def _summary() -> list[tuple[int, int, Builder[model.Panel]]]:
    exporter_up = (
        stat_panel(
            "Exporter",
            "callmeter_up: UP when the exporter's last refresh reached the CallMeter API and"
            " authenticated. When it is DOWN, every other panel shows stale or no data.",
            query("min(callmeter_up)", legend="exporter", instant=True),
        )
        .mappings(up_down_mappings())
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .links([dashboard_link("Exporter health", EXPORTER_UID)])
    )
    data_age = (
        stat_panel(
            "Oldest data",
            "Age of the stalest resource the exporter serves (time since its last successful"
            " refresh). See the exporter dashboard for each resource.",
            query("max(time() - callmeter_exporter_last_success_timestamp_seconds)", legend="age", instant=True),
        )
        .unit("s")
        .links([dashboard_link("Exporter health", EXPORTER_UID)])
    )
    by_status = (
        stat_panel(
            "Probes by status",
            "Number of probes in each health state. UNHEALTHY: a metric is past its critical"
            " threshold; DEGRADED: past warning only; UNKNOWN: nothing to evaluate yet." + CACHED,
            query(f"sum by (status) (callmeter_probe_status{{{PROBES}}})", legend="{{status}}", instant=True),
        )
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(common.BigValueColorMode.VALUE)
        .color_scheme(dash.FieldColor().mode(model.FieldColorModeId.FIXED).fixed_color(GREY))
    )
    for name, _, colour in PROBE_STATES:
        by_status = by_status.override_by_name(name, fixed_colour(colour))
    overdue = stat_panel(
        "Overdue probes",
        "Probes whose next scheduled execution is in the past (time() - next execution > 0).",
        query(
            f"count((time() - callmeter_probe_next_execution_timestamp_seconds{{{PROBES}}}) > 0) or vector(0)",
            legend="overdue",
            instant=True,
        ),
    ).thresholds(thresholds(GREEN, (1, ORANGE)))
    failed_runs = stat_panel(
        "Tests whose last run failed",
        "Tests whose latest run ended FAILED or CANNOT_RUN_FOR_NOW." + CACHED,
        query(
            f'count(callmeter_test_run_last_status{{{TESTS}, status=~"FAILED|CANNOT_RUN_FOR_NOW"}} == 1) or vector(0)',
            legend="failed",
            instant=True,
        ),
    ).thresholds(thresholds(GREEN, (1, RED)))
    return [(3, 4, exporter_up), (3, 4, data_age), (10, 4, by_status), (4, 4, overdue), (4, 4, failed_runs)]


def _probe_timeline() -> Builder[model.Panel]:
    expr = state_code_expr("callmeter_probe_status", PROBES, "project, probe", PROBE_STATES)
    return state_timeline_panel(
        "Probe status over time",
        "Health state of each probe over time: HEALTHY green, DEGRADED orange, UNHEALTHY red,"
        " UNKNOWN grey. Find where and since when a probe is unhealthy." + CACHED,
        query(expr, legend="{{probe}} ({{project}})"),
        PROBE_STATES,
    )


def _probe_table() -> Builder[model.Panel]:
    by = "project, probe_id, probe"
    next_run = f"max by ({by}) (callmeter_probe_next_execution_timestamp_seconds{{{PROBES}}})"
    targets = [
        query(state_code_expr("callmeter_probe_status", PROBES, by, PROBE_STATES), ref="A", table=True),
        query(f"max by ({by}) (callmeter_probe_interval_seconds{{{PROBES}}})", ref="B", table=True),
        query(
            f"max by ({by}) (callmeter_probe_last_execution_timestamp_seconds{{{PROBES}}}) * 1000",
            ref="C",
            table=True,
        ),
        query(f"{next_run} * 1000", ref="D", table=True),
        query(f"clamp_min(time() - {next_run}, 0)", ref="E", table=True),
    ]
    return (
        table_panel(
            "Probes",
            "Current state of each probe, its configured interval, last and next execution, and how"
            " long its next execution is overdue (0 when it is not)." + CACHED,
            targets,
            columns={
                "project": "Project",
                "probe": "Probe",
                "Value #A": "Status",
                "Value #B": "Interval",
                "Value #C": "Last execution",
                "Value #D": "Next execution",
                "Value #E": "Overdue by",
            },
            hidden=("Time", "probe_id"),
        )
        .override_by_name(
            "Status",
            [
                model.DynamicConfigValue(id_val="mappings", value=state_mappings(PROBE_STATES)),
                cell_colour(common.TableCellDisplayMode.COLOR_BACKGROUND),
            ],
        )
        .override_by_name("Interval", [unit("s")])
        .override_by_name("Last execution", [unit("dateTimeAsIso")])
        .override_by_name("Next execution", [unit("dateTimeAsIso")])
        .override_by_name(
            "Overdue by",
            [
                unit("s"),
                model.DynamicConfigValue(id_val="thresholds", value=thresholds(GREEN, (1, RED)).build()),
                cell_colour(common.TableCellDisplayMode.COLOR_TEXT),
            ],
        )
    )


def _quality_panel(title: str, metric: str, unit_id: str, description: str) -> timeseries.Panel:
    return timeseries_panel(
        title,
        description + LATEST_COMPLETED,
        unit_id,
        query(f"max by (project, test_id, test) ({metric}{{{TESTS}}})", legend="{{test}} ({{project}})"),
    ).line_interpolation(common.LineInterpolation.STEP_AFTER)


THRESHOLD_LEVELS = (("warning", ORANGE), ("critical", RED))
THRESHOLD_NOTE = (
    " Dashed: the warning and critical thresholds CallMeter judges the selected probes by (callmeter_probe_threshold;"
    " the strictest when probes differ), where their details give one."
)


def _with_threshold_lines(panel: timeseries.Panel, metric: str, *, higher_is_worse: bool) -> timeseries.Panel:
    """The probes' warning and critical lines for `metric` (a `callmeter_probe_threshold` metric label) as
    dashed series: the strictest of the selected probes, so the line is where the first probe complains."""
    strictest = "min" if higher_is_worse else "max"
    expr = f'{strictest} by (level) (callmeter_probe_threshold{{{PROBES}, metric="{metric}"}})'
    panel = panel.with_target(query(expr, legend="probe {{level}} threshold", ref="B"))
    for level, colour in THRESHOLD_LEVELS:
        dashed = model.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]})
        panel = panel.override_by_name(
            f"probe {level} threshold",
            [*fixed_colour(colour), dashed, model.DynamicConfigValue(id_val="custom.fillOpacity", value=0)],
        )
    return panel


def _call_quality() -> list[list[tuple[int, int, Builder[model.Panel]]]]:
    dashed_bands = GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED_AND_AREA)
    mos = (
        _quality_panel(
            "MOS",
            "callmeter_test_run_mos",
            "none",
            "Mean opinion score, 1-5 (E-model). Red below 3.5, orange from 3.5, green from 4.0." + THRESHOLD_NOTE,
        )
        .min(1)
        .max(5)
        .decimals(2)
        .thresholds(thresholds(RED, (3.5, ORANGE), (4.0, GREEN)))
        .thresholds_style(dashed_bands)
    )
    loss = (
        _quality_panel(
            "Packet loss",
            "callmeter_test_run_packet_loss_ratio",
            "percentunit",
            "Average packet loss. CallMeter rates up to 1% good, 1-5% warning, above 5% critical." + THRESHOLD_NOTE,
        )
        .min(0)
        .thresholds(thresholds(GREEN, (0.01, ORANGE), (0.05, RED)))
        .thresholds_style(dashed_bands)
    )
    jitter = _quality_panel(
        "Jitter", "callmeter_test_run_jitter_seconds", "s",
        "Average RTP inter-arrival jitter (RFC 3550)." + THRESHOLD_NOTE,
    ).min(0)
    rtt = _quality_panel(
        "Round-trip time", "callmeter_test_run_rtt_seconds", "s",
        "Average round-trip time from RTCP reports." + THRESHOLD_NOTE,
    ).min(0)
    mos = _with_threshold_lines(mos, "mos", higher_is_worse=False)
    loss = _with_threshold_lines(loss, "packet_loss_ratio", higher_is_worse=True)
    jitter = _with_threshold_lines(jitter, "jitter_seconds", higher_is_worse=True)
    rtt = _with_threshold_lines(rtt, "rtt_seconds", higher_is_worse=True)
    asr = (
        _quality_panel(
            "ASR",
            "callmeter_test_run_asr_ratio",
            "percentunit",
            "Answer-seizure ratio: answered calls / call attempts.",
        )
        .min(0)
        .max(1)
    )
    ner = (
        _quality_panel(
            "NER",
            "callmeter_test_run_ner_ratio",
            "percentunit",
            "Network effectiveness ratio: like ASR, but failures caused by the called user (busy,"
            " no answer) do not count against it.",
        )
        .min(0)
        .max(1)
    )
    return [[(12, 8, mos), (12, 8, loss)], [(12, 8, jitter), (12, 8, rtt)], [(12, 8, asr), (12, 8, ner)]]


def _latest_runs() -> Builder[model.Panel]:
    by = "project, test_id, test"

    endpoints = "callmeter_test_run_endpoints"
    targets = [
        query(state_code_expr("callmeter_test_run_last_status", TESTS, by, RUN_STATES), ref="A", table=True),
        query(f"max by ({by}) (callmeter_test_run_mos{{{TESTS}}})", ref="B", table=True),
        query(f"max by ({by}) (callmeter_test_run_asr_ratio{{{TESTS}}})", ref="C", table=True),
        query(f"max by ({by}) (callmeter_test_run_ner_ratio{{{TESTS}}})", ref="D", table=True),
        query(f'max by ({by}) ({endpoints}{{{TESTS}, state="total"}})', ref="E", table=True),
        query(f'max by ({by}) ({endpoints}{{{TESTS}, state="registered"}})', ref="F", table=True),
        query(f'max by ({by}) ({endpoints}{{{TESTS}, state="registration_failed"}})', ref="G", table=True),
        query(f"max by ({by}) (callmeter_test_run_start_timestamp_seconds{{{TESTS}}}) * 1000", ref="H", table=True),
        query(f"max by ({by}) (callmeter_test_run_end_timestamp_seconds{{{TESTS}}}) * 1000", ref="I", table=True),
    ]
    return (
        table_panel(
            "Latest run per test",
            "Last run: status of the latest run of each test, whatever its state (did it pass?)."
            " The other columns come from the latest COMPLETED run: MOS, ASR, NER, endpoints in"
            " total, registered and failing to register, and when it started and finished." + CACHED,
            targets,
            columns={
                "project": "Project",
                "test": "Test",
                "Value #A": "Last run",
                "Value #B": "MOS",
                "Value #C": "ASR",
                "Value #D": "NER",
                "Value #E": "Endpoints",
                "Value #F": "Registered",
                "Value #G": "Registration failed",
                "Value #H": "Started",
                "Value #I": "Finished",
            },
            hidden=("Time", "test_id"),
        )
        .override_by_name(
            "Last run",
            [
                model.DynamicConfigValue(id_val="mappings", value=state_mappings(RUN_STATES)),
                cell_colour(common.TableCellDisplayMode.COLOR_BACKGROUND),
            ],
        )
        .override_by_name("MOS", mos_cell())
        .override_by_name("ASR", [unit("percentunit")])
        .override_by_name("NER", [unit("percentunit")])
        .override_by_name(
            "Registration failed",
            [
                model.DynamicConfigValue(id_val="thresholds", value=thresholds(GREEN, (1, RED)).build()),
                cell_colour(common.TableCellDisplayMode.COLOR_TEXT),
            ],
        )
        .override_by_name("Started", [unit("dateTimeAsIso")])
        .override_by_name("Finished", [unit("dateTimeAsIso")])
    )


def _failed_endpoints() -> Builder[model.Panel]:
    failed = f'{TESTS}, outcome!~"SUCCESS|COMPLETED_WITH_WARNINGS"'
    return table_panel(
        "Failed endpoints by outcome and group",
        "Why calls failed: endpoints of the latest completed run of each test that ended in a failure,"
        " by group and outcome (REGISTRATION_FAILED, CALL_FAILED, NEGOTIATION_FAILED, TIMEOUT, OSERROR,"
        " TEARDOWN_ERROR, or one CallMeter does not document), read once per run from its endpoint listing"
        " (callmeter_test_run_endpoint_outcomes). Only counts above 0." + CACHED,
        [
            query(
                f"max by (project, test, group, outcome) (callmeter_test_run_endpoint_outcomes{{{failed}}}) > 0",
                table=True,
            )
        ],
        columns={"project": "Project", "test": "Test", "group": "Group", "outcome": "Outcome", "Value": "Endpoints"},
    ).override_by_name(
        "Endpoints",
        [
            model.DynamicConfigValue(id_val="thresholds", value=thresholds(ORANGE, (10, RED)).build()),
            cell_colour(common.TableCellDisplayMode.COLOR_TEXT),
        ],
    )


def _probe_thresholds() -> Builder[model.Panel]:
    by = "project, probe, test_id, metric, level"
    return table_panel(
        "Probe thresholds",
        "The warning and critical lines CallMeter judges each probe by, from the probe's detail, in base"
        " units (mos 1-5, jitter_seconds and rtt_seconds in seconds, packet_loss_ratio 0-1), and the test the"
        " probe runs where the detail names one. A probe whose detail gives no threshold is not listed." + CACHED,
        [
            query(
                f"max by ({by}) (callmeter_probe_threshold{{{PROBES}}}"
                " * on (project, probe_id) group_left (test_id) callmeter_probe_info)",
                table=True,
            )
        ],
        columns={"project": "Project", "probe": "Probe", "test_id": "Test id", "metric": "Metric",
                 "level": "Level", "Value": "Threshold"},
    )


def _test_settings() -> Builder[model.Panel]:
    return table_panel(
        "Test settings",
        "What each test is set to do, from its detail (callmeter_test_info): configured duration, endpoint"
        " count and codecs. Empty where the detail does not say.",
        [
            query(
                f"max by (project, test, duration_seconds, endpoints, codecs) (callmeter_test_info{{{TESTS}}})",
                table=True,
            )
        ],
        columns={"project": "Project", "test": "Test", "duration_seconds": "Duration (s)", "endpoints": "Endpoints",
                 "codecs": "Codecs"},
        hidden=("Time", "Value"),
    )


def _run_timeline() -> Builder[model.Panel]:
    expr = state_code_expr("callmeter_test_run_last_status", TESTS, "project, test", RUN_STATES)
    return state_timeline_panel(
        "Latest run status over time",
        "Status of the latest run of each test over time: COMPLETED green, FAILED red,"
        " CANNOT_RUN_FOR_NOW orange, in progress blue." + CACHED,
        query(expr, legend="{{test}} ({{project}})"),
        RUN_STATES,
    )


def _finished_runs() -> Builder[model.Panel]:
    panel = (
        timeseries_panel(
            "Finished runs by status",
            "Runs that reached a terminal status in each interval, counted once per run since the"
            " exporter started (increase of callmeter_test_runs_finished_total).",
            "short",
            query(
                f"sum by (status) (increase(callmeter_test_runs_finished_total{{{TESTS}}}[$__interval]))",
                legend="{{status}}",
            ),
        )
        .interval("5m")
        .decimals(0)
        .min(0)
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .stacking(StackingConfig().mode(common.StackingMode.NORMAL))
    )
    for name, colour in (("COMPLETED", GREEN), ("CANNOT_RUN_FOR_NOW", ORANGE), ("FAILED", RED)):
        panel = panel.override_by_name(name, fixed_colour(colour))
    return panel


def _gates() -> Builder[model.Panel]:
    by = "project, test_id, test"
    selector = f'{TESTS}, test_id!=""'
    targets = [
        query(f"max by ({by}) (callmeter_gate_passed{{{selector}}})", ref="A", table=True),
        query(f"max by ({by}) (callmeter_gate_exit_code{{{selector}}})", ref="B", table=True),
        query(f"max by ({by}) (callmeter_gate_mos{{{selector}}})", ref="C", table=True),
        query(f"max by ({by}) (callmeter_gate_run_duration_seconds{{{selector}}})", ref="D", table=True),
    ]
    verdicts = {"1": model.ValueMappingResult(text="PASSED", color=GREEN, index=0),
                "0": model.ValueMappingResult(text="FAILED", color=RED, index=1)}
    return (
        table_panel(
            "Last quality gate per test",
            "Result of the last `callmeter-exporter gate` of each test, pushed with --pushgateway (job"
            " callmeter_gate; scrape the Pushgateway with honor_labels: true): passed or failed, its exit"
            " code (1 a gate failed, 3 the run failed, 4 timed out, 5 API error), the judged run's MOS and"
            " how long it ran. Empty until a gate pushes.",
            targets,
            columns={
                "project": "Project",
                "test": "Test",
                "Value #A": "Gate",
                "Value #B": "Exit code",
                "Value #C": "MOS",
                "Value #D": "Ran",
            },
            hidden=("Time", "test_id"),
        )
        .override_by_name(
            "Gate",
            [
                model.DynamicConfigValue(id_val="mappings", value=[model.ValueMap(options=verdicts)]),
                cell_colour(common.TableCellDisplayMode.COLOR_BACKGROUND),
            ],
        )
        .override_by_name("MOS", mos_cell())
        .override_by_name("Ran", [unit("s")])
    )


def _projects() -> Builder[model.Panel]:
    return table_panel(
        "Projects",
        "CallMeter projects the API key can read (callmeter_project_info).",
        [query(f"max by (project, project_id, name) (callmeter_project_info{{{PROJECT}}})", table=True)],
        columns={"project": "Project", "name": "Name", "project_id": "ID"},
        hidden=("Time", "Value"),
    )


def _registrars() -> Builder[model.Panel]:
    return table_panel(
        "Registrars",
        "SIP registrars configured in each project (callmeter_registrar_info).",
        [
            query(
                f"max by (project, registrar_id, registrar, uri, transport) (callmeter_registrar_info{{{PROJECT}}})",
                table=True,
            )
        ],
        columns={"project": "Project", "registrar": "Registrar", "uri": "URI", "transport": "Transport"},
        hidden=("Time", "Value", "registrar_id"),
    )
