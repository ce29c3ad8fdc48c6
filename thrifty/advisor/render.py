"""The savings plan as JSON, Markdown or a Rich table."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

from thrifty.advisor.forecast import Projection
from thrifty.advisor.plan import Plan


def plan_json(plan: Plan) -> dict[str, Any]:
    """Return the plan with every amount as an exact decimal string."""
    return {
        "monthly_spend_usd": _usd(plan.monthly_spend),
        "saving_low_usd": _usd(plan.saving_low),
        "saving_high_usd": _usd(plan.saving_high),
        "requests": plan.requests,
        "unpriced_requests": plan.unpriced_requests,
        "failed_requests": plan.failed_requests,
        "period_s": int(plan.period.total_seconds()),
        "levers": [
            {
                "lever": lever.lever,
                "title": lever.title,
                "saving_low_usd": _usd(lever.saving_low),
                "saving_high_usd": _usd(lever.saving_high),
                "alone_low_usd": _usd(lever.alone_low),
                "alone_high_usd": _usd(lever.alone_high),
                "applies_to_usd": _usd(lever.applies_to),
                "requests": lever.requests,
                "features": lever.features,
                "sample_request_ids": lever.samples,
                "config": lever.config,
                "assumptions": lever.assumptions,
            }
            for lever in plan.levers
        ],
        "advice": [{"title": item.title, "detail": item.detail} for item in plan.advice],
        "notes": plan.notes,
        "features": [
            {
                "feature": row.feature,
                "monthly_usd": _usd(row.before),
                "after_cautious_usd": _usd(row.after_cautious),
                "after_generous_usd": _usd(row.after_generous),
            }
            for row in plan.features
        ],
    }


def projection_json(projection: Projection) -> dict[str, Any]:
    """Return a month-end projection with every amount as an exact decimal string."""
    return {
        "key": projection.key,
        "month": projection.month,
        "spent_usd": _usd(projection.spent),
        "projected_usd": _usd(projection.projected),
        "low_usd": _usd(projection.low),
        "high_usd": _usd(projection.high),
        "days_seen": projection.days_seen,
    }


def plan_markdown(plan: Plan) -> str:
    lines = [
        "# Savings plan",
        "",
        f"Monthly spend: ${_money(plan.monthly_spend)}. Possible saving: "
        f"${_money(plan.saving_low)} to ${_money(plan.saving_high)} a month.",
        "",
        "| # | lever | saving a month | applies to | features |",
        "| --- | --- | --- | --- | --- |",
    ]
    for rank, lever in enumerate(plan.levers, start=1):
        lines.append(
            f"| {rank} | {lever.title} | ${_money(lever.saving_low)} to "
            f"${_money(lever.saving_high)} | ${_money(lever.applies_to)} | "
            f"{', '.join(lever.features)} |"
        )
    for lever in plan.levers:
        lines += ["", f"## {lever.title}", "", f"Assumptions: {lever.assumptions}.", ""]
        lines += [f"Sample requests: {', '.join(lever.samples)}", "", "```", lever.config, "```"]
    if plan.advice:
        lines += ["", "## Not estimated in dollars", ""]
        lines += [f"- **{item.title}**: {item.detail}" for item in plan.advice]
    lines += ["", *[f"_{note}_" for note in plan.notes]]
    return "\n".join(lines) + "\n"


def print_plan(plan: Plan, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(
        title=f"Savings plan: ${_money(plan.monthly_spend)} a month, "
        f"save ${_money(plan.saving_low)} to ${_money(plan.saving_high)}"
    )
    for name, justify in (("#", "right"), ("lever", "left"), ("saving / month", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_column("applies to", justify="right")
    table.add_column("features")
    for rank, lever in enumerate(plan.levers, start=1):
        table.add_row(
            str(rank),
            lever.title,
            f"${_money(lever.saving_low)}–${_money(lever.saving_high)}",
            f"${_money(lever.applies_to)}",
            ", ".join(lever.features),
        )
    console.print(table)
    for lever in plan.levers:
        console.print(f"[bold]{lever.title}[/bold]: {lever.assumptions}")
        console.print(f"  samples: {', '.join(lever.samples)}")
        # A snippet's YAML lists look like console markup, so markup is off for it.
        snippet = f"  {lever.config.strip()}".replace("\n", "\n  ")
        console.print(snippet, highlight=False, markup=False)
    for item in plan.advice:
        console.print(f"[bold]{item.title}[/bold]: {item.detail}")
    for note in plan.notes:
        console.print(f"[dim]{note}[/dim]")


def _usd(amount: Decimal) -> str:
    return format(amount, "f")


def _money(amount: Decimal) -> str:
    return f"{amount:,.2f}"
