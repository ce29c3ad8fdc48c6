"""The savings plan as one self-contained HTML page, with plotly charts.

plotly.js is embedded from the installed ``plotly`` package, so the page
opens offline and fetches nothing. Table amounts are exact decimals
rounded to cents for reading (the exact value is in each cell's title);
the charts plot them as floats.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from html import escape
from typing import Any

# plotly 7 ships no type information.
import plotly.graph_objects as go  # type: ignore[import-untyped]
from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

from thrifty.advisor.forecast import Projection
from thrifty.advisor.plan import Plan
from thrifty.advisor.traffic import Traffic

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222; }
table { border-collapse: collapse; width: 100%; margin: 1rem 0; }
th, td { border-bottom: 1px solid #ddd; padding: .35rem .6rem; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f5f5f5; padding: .6rem; overflow-x: auto; }
.note { color: #666; font-size: .9rem; }
"""


def plan_html(plan: Plan, traffic: Traffic, now: datetime, forecast: Projection | None) -> str:
    """Return the whole page: summary, plan table, per-lever evidence and the charts.

    ``forecast`` is this month's total projection (None when the month has
    no spend yet); its daily series is read from ``traffic``.
    """
    body = [
        "<h1>Savings plan</h1>",
        f"<p>Monthly spend: {_cell_money(plan.monthly_spend)}. Possible saving: "
        f"{_cell_money(plan.saving_low)} to {_cell_money(plan.saving_high)} a month, "
        f"from {plan.requests:,} requests over {escape(str(plan.period))}.</p>",
        _plan_table(plan),
        "<h2>Spend by feature, before and after the plan</h2>",
        _feature_chart(plan),
        "<h2>Month-end forecast</h2>",
        _forecast_section(traffic, now, forecast),
        _evidence(plan),
        _advice(plan),
        "".join(f'<p class="note">{escape(note)}</p>' for note in plan.notes),
    ]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>Thrifty savings plan</title>"
        f"<style>{_STYLE}</style>"
        f'<script type="text/javascript">{_plotly_js()}</script>'
        "</head><body>" + "\n".join(body) + "</body></html>\n"
    )


def _plan_table(plan: Plan) -> str:
    if not plan.levers:
        return "<p>No lever saves money on this traffic.</p>"
    head = (
        "<tr><th>#</th><th>lever</th><th class=num>saving a month</th>"
        "<th class=num>as the only change</th><th class=num>applies to</th>"
        "<th class=num>requests</th><th>features</th></tr>"
    )
    rows = []
    for rank, lever in enumerate(plan.levers, start=1):
        rows.append(
            f"<tr><td>{rank}</td><td>{escape(lever.title)}</td>"
            f"<td class=num>{_money_range(lever.saving_low, lever.saving_high)}</td>"
            f"<td class=num>{_money_range(lever.alone_low, lever.alone_high)}</td>"
            f"<td class=num>{_cell_money(lever.applies_to)}</td>"
            f"<td class=num>{lever.requests:,}</td>"
            f"<td>{escape(', '.join(lever.features))}</td></tr>"
        )
    return f'<table id="plan">{head}{"".join(rows)}</table>'


def _evidence(plan: Plan) -> str:
    parts = []
    for lever in plan.levers:
        parts += [
            f'<h2 id="lever-{escape(lever.lever)}">{escape(lever.title)}</h2>',
            f"<p>Assumptions: {escape(lever.assumptions)}.</p>",
            f"<p>Sample requests: {escape(', '.join(lever.samples))}</p>",
            f"<pre>{escape(lever.config)}</pre>",
        ]
    return "\n".join(parts)


def _advice(plan: Plan) -> str:
    if not plan.advice:
        return ""
    items = "".join(
        f"<li><strong>{escape(item.title)}</strong>: {escape(item.detail)}</li>"
        for item in plan.advice
    )
    return f"<h2>Not estimated in dollars</h2><ul>{items}</ul>"


def _feature_chart(plan: Plan) -> str:
    if not plan.features:
        return "<p>No priced requests in this period.</p>"
    names = [row.feature for row in plan.features]
    figure = go.Figure(
        [
            go.Bar(name="now", x=names, y=[float(row.before) for row in plan.features]),
            go.Bar(
                name="after (cautious)",
                x=names,
                y=[float(row.after_cautious) for row in plan.features],
            ),
            go.Bar(
                name="after (generous)",
                x=names,
                y=[float(row.after_generous) for row in plan.features],
            ),
        ]
    )
    figure.update_layout(barmode="group", yaxis_title="USD a month", margin={"t": 20})
    return _div(figure, "feature-chart", 420)


def _forecast_section(traffic: Traffic, now: datetime, forecast: Projection | None) -> str:
    if forecast is None:
        return f"<p>No spend recorded in {now:%Y-%m} yet, so there is no projection.</p>"
    days, cumulative = _cumulative_days(traffic, now)
    month_end = date(now.year, now.month, calendar.monthrange(now.year, now.month)[1])
    figure = go.Figure(
        [
            go.Scatter(name="spent", x=days, y=cumulative, mode="lines+markers"),
            go.Scatter(
                name="projection",
                x=[now.date(), month_end],
                y=[float(forecast.spent), float(forecast.projected)],
                mode="lines",
                line={"dash": "dash"},
            ),
            go.Scatter(
                name="interval (about 95%)",
                x=[month_end, month_end],
                y=[float(forecast.low), float(forecast.high)],
                mode="lines+markers",
            ),
        ]
    )
    figure.update_layout(yaxis_title="USD this month", margin={"t": 20})
    summary = (
        f"<p>{_cell_money(forecast.spent)} spent in {escape(forecast.month)}; projected "
        f"{_cell_money(forecast.projected)} by the month's end (interval "
        f"{_cell_money(forecast.low)} to {_cell_money(forecast.high)}). The interval "
        "assumes days vary independently around the month's mean so far.</p>"
    )
    return summary + _div(figure, "forecast-chart", 380)


def _cumulative_days(traffic: Traffic, now: datetime) -> tuple[list[date], list[float]]:
    month_start = now.date().replace(day=1)
    daily: dict[date, Decimal] = defaultdict(Decimal)
    for record in traffic.records:
        day = record.started_at.date()
        if month_start <= day <= now.date():
            daily[day] += record.cost_usd or Decimal(0)
    days = [
        date.fromordinal(ordinal)
        for ordinal in range(month_start.toordinal(), now.date().toordinal() + 1)
    ]
    total = Decimal(0)
    cumulative = []
    for day in days:
        total += daily.get(day, Decimal(0))
        cumulative.append(float(total))
    return days, cumulative


def _div(figure: Any, div_id: str, height_px: int) -> str:
    html = figure.to_html(
        full_html=False, include_plotlyjs=False, div_id=div_id, default_height=f"{height_px}px"
    )
    return str(html)


def _plotly_js() -> str:
    return str(get_plotlyjs())


def _money_range(low: Decimal, high: Decimal) -> str:
    return f"{_cell_money(low)} to {_cell_money(high)}"


def _cell_money(amount: Decimal) -> str:
    return f'<span title="{format(amount, "f")}">${amount:,.2f}</span>'
