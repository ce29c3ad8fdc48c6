"""Monthly chargeback statements: each owner's spend, its features, and unattributed spend.

An owner is a team, project, key or user, or a cost center from a rule
file (``thrifty.allocation.rules``). Spend without an owner (no team, or
no matching cost center and no default) is unattributed and reported on a
line of its own, never spread over the owners. Costs are exact sums of the
priced requests; unpriced requests are counted and flagged, never priced
as $0.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Context, Decimal

from thrifty.allocation.rules import AllocationRules
from thrifty.errors import ConfigError
from thrifty.ledger import Ledger, ReportQuery, Totals

OWNER_DIMENSIONS = ("team", "project", "key", "user", "cost_center")
_SHARE = Context(prec=6)


@dataclass(slots=True)
class OwnerSection:
    """One owner's totals and its spend per feature, highest first."""

    owner: str | None
    totals: Totals = field(default_factory=Totals)
    features: dict[str | None, Totals] = field(default_factory=dict)

    def add(self, feature: str | None, totals: Totals) -> None:
        self.totals += totals
        found = self.features.get(feature)
        self.features[feature] = totals if found is None else found + totals

    def ranked_features(self) -> list[tuple[str | None, Totals]]:
        return sorted(self.features.items(), key=lambda item: (-item[1].cost_usd, item[0] or ""))


@dataclass(slots=True)
class Statement:
    """A month's spend by owner; ``unattributed`` is None when every request has an owner."""

    month: str
    by: str
    since: datetime
    until: datetime
    totals: Totals
    owners: list[OwnerSection]
    unattributed: OwnerSection | None


def month_range(month: str) -> tuple[datetime, datetime]:
    """Return the UTC start of ``YYYY-MM`` and of the month after it."""
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise ConfigError(f"invalid month {month!r}; write it as YYYY-MM, e.g. 2026-11") from None
    following = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start, following


def build_statement(
    ledger: Ledger, month: str, by: str, rules: AllocationRules | None = None
) -> Statement:
    """Aggregate one month of the ledger into a chargeback statement by ``by``."""
    if by not in OWNER_DIMENSIONS:
        raise ConfigError(f"invalid --by {by!r}; use one of {', '.join(OWNER_DIMENSIONS)}")
    if by == "cost_center" and rules is None:
        raise ConfigError("--by cost_center needs a rule file; pass it with --rules FILE")
    since, until = month_range(month)

    dimensions = rules.dimensions if by == "cost_center" and rules is not None else [by]
    report = ledger.report(
        ReportQuery(by=_unique([*dimensions, "feature"]), since=since, until=until)
    )
    sections: dict[str | None, OwnerSection] = {}
    for group in report.groups:
        owner = _owner(group.values, by, rules)
        section = sections.setdefault(owner, OwnerSection(owner))
        section.add(group.values["feature"], group.totals)

    unattributed = sections.pop(None, None)
    owners = sorted(sections.values(), key=lambda item: (-item.totals.cost_usd, item.owner or ""))
    return Statement(month, by, since, until, report.totals, owners, unattributed)


def _owner(values: dict[str, str | None], by: str, rules: AllocationRules | None) -> str | None:
    if by == "cost_center" and rules is not None:
        return rules.cost_center(values)
    return values[by]


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def share(part: Decimal, whole: Decimal) -> str:
    """Return ``part`` as a percentage of ``whole``, to one decimal place."""
    if whole == 0:
        return "0.0%"
    return f"{_SHARE.divide(part * 100, whole):.1f}%"


CSV_COLUMNS = (
    "month",
    "owner",
    "feature",
    "attributed",
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cost_usd",
    "unpriced_requests",
)


def statement_csv(statement: Statement) -> str:
    """Return one CSV row per owner and feature, unattributed rows last, costs exact."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([statement.by if name == "owner" else name for name in CSV_COLUMNS])
    sections = [*statement.owners]
    if statement.unattributed is not None:
        sections.append(statement.unattributed)
    for section in sections:
        for feature, totals in section.ranked_features():
            writer.writerow(
                [
                    statement.month,
                    section.owner or "",
                    feature or "",
                    "true" if section.owner is not None else "false",
                    totals.requests,
                    totals.input_tokens,
                    totals.output_tokens,
                    totals.cache_read_tokens,
                    format(totals.cost_usd, "f"),
                    totals.unpriced_requests,
                ]
            )
    return buffer.getvalue()


def statement_markdown(statement: Statement, source: str) -> str:
    """Return the statement as a Markdown document: summary, one section per owner, unattributed."""
    total = statement.totals.cost_usd
    lines = [
        f"# Chargeback statement for {statement.month}, by {statement.by}",
        "",
        f"Requests started from {statement.since.isoformat()} until {statement.until.isoformat()}"
        f" (UTC), read from the ledger at {source}. Amounts are USD rounded to 6 decimal places;"
        " the CSV form is exact.",
        "",
        f"Total spend: **{usd(total)}** over {statement.totals.requests:,} requests.",
        "",
        f"| {statement.by} | requests | input tokens | output tokens | spend | share |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for section in statement.owners:
        lines.append(_summary_row(cell(section.owner), section.totals, total))
    if statement.unattributed is not None:
        lines.append(_summary_row("**unattributed**", statement.unattributed.totals, total))
    lines.append(_summary_row("**total**", statement.totals, total))

    for section in statement.owners:
        lines += ["", f"## {cell(section.owner)}", "", *_feature_table(section)]
    lines += ["", "## Unattributed spend", ""]
    if statement.unattributed is None:
        lines.append(f"Every request of {statement.month} has a {statement.by}.")
    else:
        lines += _unattributed(statement)
    unpriced = statement.totals.unpriced_requests
    if unpriced:
        lines += [
            "",
            f"**Note:** {unpriced:,} requests used models without a price. They are counted "
            "above but their cost is unknown and not included; add prices under `prices:` in "
            "thrifty.yaml.",
        ]
    return "\n".join(lines) + "\n"


def _summary_row(label: str, totals: Totals, total: Decimal) -> str:
    return (
        f"| {label} | {totals.requests:,} | {totals.input_tokens:,} | {totals.output_tokens:,} "
        f"| {usd(totals.cost_usd)} | {share(totals.cost_usd, total)} |"
    )


def _feature_table(section: OwnerSection) -> list[str]:
    lines = [
        "| feature | requests | spend | share of owner |",
        "| --- | ---: | ---: | ---: |",
    ]
    for feature, totals in section.ranked_features():
        name = "(no feature)" if feature is None else cell(feature)
        lines.append(
            f"| {name} | {totals.requests:,} | {usd(totals.cost_usd)} "
            f"| {share(totals.cost_usd, section.totals.cost_usd)} |"
        )
    return lines


def _unattributed(statement: Statement) -> list[str]:
    section = statement.unattributed
    assert section is not None
    hint = (
        "Attribute it with the X-Thrifty-Team header, metadata.team in the request body, or "
        "a team on the virtual key"
        if statement.by == "team"
        else f"Attribute it by setting the {statement.by} of these requests"
    )
    if statement.by == "cost_center":
        hint = "Add a rule that matches these requests, or a default, to the rule file"
    return [
        f"{usd(section.totals.cost_usd)} over {section.totals.requests:,} requests "
        f"({share(section.totals.cost_usd, statement.totals.cost_usd)} of the month) "
        f"has no {statement.by}. {hint}.",
        "",
        *_feature_table(section),
    ]


def usd(amount: Decimal) -> str:
    return f"${amount:,.6f}"


def cell(value: str | None) -> str:
    """Return a value as a Markdown table cell: pipes escaped, on one line."""
    if value is None:
        return "(none)"
    return " ".join(value.replace("|", "\\|").split())
