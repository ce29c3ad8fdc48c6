"""CSV forms of the dashboard's tables: one header row, then one row per table row.

Money stays an exact decimal string, as in the JSON forms.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from typing import Any

from starlette.responses import Response

RowsOf = Callable[[dict[str, Any]], list[dict[str, Any]]]


def csv_response(rows: Sequence[dict[str, Any]], path: str) -> Response:
    """Return ``rows`` as a CSV attachment named after the endpoint's path."""
    buffer = io.StringIO()
    columns = _columns(rows)
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(name) is None else row[name] for name in columns])
    name = path.rstrip("/").rsplit("/", 1)[-1] or "table"
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "content-disposition": f'attachment; filename="thrifty-{name}.csv"',
            "cache-control": "no-store",
        },
    )


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    columns: dict[str, None] = {}
    for row in rows:
        for name, value in row.items():
            if not isinstance(value, dict | list):
                columns.setdefault(name)
    return list(columns)


def table_rows(key: str) -> RowsOf:
    """Return a function that takes the list under ``key`` of a JSON response as the table."""

    def rows_of(data: dict[str, Any]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = data[key]
        return rows

    return rows_of


def series_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten a spend series to one row per bucket and stack value."""
    rows = []
    for stack in data["stacks"]:
        for bucket, cost, requests in zip(
            data["buckets"], stack["cost_usd"], stack["requests"], strict=True
        ):
            rows.append(
                {"bucket": bucket, "name": stack["name"], "requests": requests, "cost_usd": cost}
            )
    return rows


def unit_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten unit-cost series to one row per series and bucket."""
    rows = []
    for series in data["series"]:
        for bucket, point in series["points"].items():
            rows.append({"name": series["name"], "bucket": bucket, **point})
    return rows


def spender_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten top spenders to one row per spender and bucket with spend."""
    rows = []
    for row in data["rows"]:
        for bucket, cost in row["cost_per_bucket"].items():
            rows.append({"name": row["value"], "bucket": bucket, "cost_usd": cost})
    return rows
