"""Building blocks shared by the CallMeter dashboards: datasource, queries, colours, panels, layout.

Every panel and every query variable reads from ``${datasource}``, the dashboard's own datasource
variable, never from ``${DS_PROMETHEUS}``: see ``datasource_variable`` for why both the import
screen and file provisioning then work with one JSON file.
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

TAGS = ["callmeter", "voip", "sip"]
OVERVIEW_UID = "callmeter-overview"
EXPORTER_UID = "callmeter-exporter"

# Name of the import-screen input. Grafana's import replaces "${DS_PROMETHEUS}" with the uid of
# the datasource the user picks; file provisioning replaces nothing.
DS_INPUT = "DS_PROMETHEUS"
# Name of the datasource the provisioning file creates (and the usual name of a Prometheus
# datasource): the datasource variable falls back to it by name when its value is not a uid.
DS_DEFAULT_NAME = "Prometheus"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")

GREEN = "green"
ORANGE = "orange"
RED = "red"
BLUE = "blue"
GREY = "#8e8e8e"

# A state-set metric (one series per status, 1 for the current one) becomes one number per object
# so a state timeline or a table cell can colour it through value mappings. Codes are internal.
PROBE_STATES: Sequence[tuple[str, int, str]] = (
    ("HEALTHY", 1, GREEN),
    ("DEGRADED", 2, ORANGE),
    ("UNHEALTHY", 3, RED),
    ("UNKNOWN", 0, GREY),
)
RUN_STATES: Sequence[tuple[str, int, str]] = (
    ("COMPLETED", 1, GREEN),
    ("CANNOT_RUN_FOR_NOW", 2, ORANGE),
    ("FAILED", 3, RED),
    ("PENDING", 10, "light-blue"),
    ("QUEUED", 11, "light-blue"),
    ("RUNNING", 12, BLUE),
    ("STOPPING", 13, "purple"),
)
OTHER_STATE = ("OTHER", -1, GREY)
"""Any status the API returned that the dashboards do not know yet."""

# Variables substituted into queries; tests replace them with a match-everything regex.
PROJECT = 'project=~"$project"'
TESTS = f'{PROJECT}, test=~"$test"'
PROBES = f'{PROJECT}, probe=~"$probe"'
EXPORTER = 'job=~"$job", instance=~"$instance"'

REQ_PER_MIN = "suffix: req/min"
PER_MIN = "suffix: /min"


def base_dashboard(title: str, uid: str, description: str) -> dash.Dashboard:
    """What both dashboards share: tags, time, refresh, links, annotations and the datasource variable."""
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
        .links(dashboard_links())
        .annotation(builtin_annotations())
        .with_variable(datasource_variable())
    )


def datasource_variable() -> dash.DatasourceVariable:
    """The ``datasource`` variable every panel and query variable reads from.

    Its default value is ``${DS_PROMETHEUS}`` so the import screen's datasource choice lands here;
    its default text is ``Prometheus`` so a provisioned copy, where nothing replaces the
    placeholder, still finds a datasource: Grafana matches the current option by value, then by
    name, then takes the first Prometheus datasource.
    """
    return (
        dash.DatasourceVariable("datasource")
        .label("Data source")
        .description("Prometheus that scrapes callmeter-exporter")
        .type("prometheus")
        .current(model.VariableOption(text=DS_DEFAULT_NAME, value="${" + DS_INPUT + "}"))
    )


def label_variable(name: str, label: str, query: str, description: str) -> dash.QueryVariable:
    """A multi-select label_values() variable that defaults to All (``.*``)."""
    return (
        dash.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(model.VariableOption(text=["All"], value=["$__all"]))
    )


def builtin_annotations() -> dash.AnnotationQuery:
    """Grafana's own annotations and alerts, as every exported dashboard carries them."""
    return (
        dash.AnnotationQuery()
        .name("Annotations & Alerts")
        .datasource(model.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
        .enable(True)
        .hide(True)
        .icon_color("rgba(0, 211, 255, 1)")
        .type("dashboard")
        .built_in(1)
    )


def dashboard_links() -> list[Builder[model.DashboardLink]]:
    """Links to every dashboard tagged ``callmeter``, keeping time range and variables."""
    return [
        dash.DashboardLink("CallMeter")
        .type(model.DashboardLinkType.DASHBOARDS)
        .tags(["callmeter"])
        .as_dropdown(False)
        .include_vars(True)
        .keep_time(True)
    ]


def dashboard_link(title: str, uid: str) -> Builder[model.DashboardLink]:
    """A panel link to another dashboard with the same time range and datasource."""
    return (
        dash.DashboardLink(title)
        .type(model.DashboardLinkType.LINK)
        .url(f"/d/{uid}?${{__url_time_range}}&${{datasource:queryparam}}")
    )


def query(
    expr: str, *, legend: str = "__auto", ref: str = "A", instant: bool = False, table: bool = False
) -> prometheus.Dataquery:
    """One PromQL target on ``${datasource}``."""
    target = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE).legend_format(legend)
    if table:
        target = target.format(PromQueryFormat.TABLE)
    return target.instant() if instant or table else target.range()


def state_code_expr(metric: str, selector: str, by: str, states: Sequence[tuple[str, int, str]]) -> str:
    """PromQL mapping a state-set gauge to one code per object (see ``PROBE_STATES``)."""
    known = "|".join(name for name, _, _ in states)
    terms = [f'({metric}{{{selector}, status="{name}"}} == 1) * {code}' for name, code, _ in states]
    terms.append(f'({metric}{{{selector}, status!~"{known}"}} == 1) * {OTHER_STATE[1]}')
    return f"max by ({by}) (\n  " + "\n  or ".join(terms) + "\n)"


def state_mappings(states: Sequence[tuple[str, int, str]]) -> list[model.ValueMapping]:
    """Value mappings turning the codes of ``state_code_expr`` back into coloured names."""
    options = {
        str(code): model.ValueMappingResult(text=name, color=colour, index=index)
        for index, (name, code, colour) in enumerate([*states, OTHER_STATE])
    }
    return [model.ValueMap(options=options)]


def up_down_mappings() -> list[model.ValueMapping]:
    """0 and 1 shown as DOWN (red) and UP (green), for callmeter_up."""
    return [model.ValueMap(options={
        "0": model.ValueMappingResult(text="DOWN", color=RED, index=0),
        "1": model.ValueMappingResult(text="UP", color=GREEN, index=1),
    })]


def thresholds(base: str, *steps: tuple[float, str]) -> dash.ThresholdsConfig:
    """Absolute thresholds: ``base`` colour below the first step."""
    return (
        dash.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=None, color=base), *(model.Threshold(value=v, color=c) for v, c in steps)])
    )


def fixed_colour(colour: str) -> list[model.DynamicConfigValue]:
    """Override properties giving a series one fixed colour."""
    return [model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": colour})]


def stat_panel(title: str, description: str, *targets: prometheus.Dataquery) -> stat.Panel:
    """A stat showing the last value of each series, coloured by value."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .graph_mode(common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.VALUE)
        .text_mode(common.BigValueTextMode.AUTO)
        .justify_mode(common.BigValueJustifyMode.AUTO)
        .orientation(common.VizOrientation.AUTO)
    )
    for target in targets:
        panel = panel.with_target(target)
    return panel


def timeseries_panel(title: str, description: str, unit: str, *targets: prometheus.Dataquery) -> timeseries.Panel:
    """Lines over time with a table legend showing last and max."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .span_nulls(False)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(
            common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING)
        )
    )
    for target in targets:
        panel = panel.with_target(target)
    return panel


def state_timeline_panel(
    title: str, description: str, target: prometheus.Dataquery, states: Sequence[tuple[str, int, str]]
) -> statetimeline.Panel:
    """One coloured band per object, one colour per state."""
    return (
        statetimeline.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(target)
        .mappings(state_mappings(states))
        .thresholds(thresholds(GREY))
        .color_scheme(dash.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
        .show_value(common.VisibilityMode.NEVER)
        .merge_values(True)
        .row_height(0.9)
        .fill_opacity(80)
        .line_width(0)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
    )


def table_panel(
    title: str,
    description: str,
    targets: Sequence[prometheus.Dataquery],
    *,
    columns: dict[str, str],
    hidden: Sequence[str] = ("Time",),
) -> table.Panel:
    """Instant table queries merged into one row per object.

    ``columns`` renames the value columns (``Value #A`` when a panel has several queries) in the
    order given; ``hidden`` columns are dropped.
    """
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .cell_height(common.TableCellHeight.SM)
    )
    for target in targets:
        panel = panel.with_target(target)
    if len(targets) > 1:
        panel = panel.with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
    return panel.with_transformation(
        model.DataTransformerConfig(
            id_val="organize",
            options={
                "excludeByName": dict.fromkeys(hidden, True),
                "renameByName": columns,
                "indexByName": {},
            },
        )
    )


def cell_colour(mode: common.TableCellDisplayMode) -> model.DynamicConfigValue:
    """Override property colouring a table column's cells."""
    return model.DynamicConfigValue(id_val="custom.cellOptions", value={"type": str(mode)})


def unit(unit_id: str) -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val="unit", value=unit_id)


def add_row(
    dashboard: dash.Dashboard, title: str, lines: Sequence[Sequence[tuple[int, int, Builder[model.Panel]]]]
) -> dash.Dashboard:
    """Add a row titled ``title`` and its panels, line by line: (width, height, panel).

    Each line must fill the 24 grid columns, so the SDK's left-to-right placement lines up.
    """
    dashboard = dashboard.with_row(dash.Row(title))
    for line in lines:
        if sum(width for width, _, _ in line) != 24:
            raise ValueError(f"row {title!r}: a line of panels must be 24 columns wide")
        for width, height, panel in line:
            dashboard = dashboard.with_panel(_sized(panel, width, height))
    return dashboard


def _sized(panel: Builder[model.Panel], width: int, height: int) -> Builder[model.Panel]:
    # Every panel builder of the SDK has span() and height(); the base Builder type does not say so.
    sized: Builder[model.Panel] = panel.span(width).height(height)  # type: ignore[attr-defined]
    return sized
