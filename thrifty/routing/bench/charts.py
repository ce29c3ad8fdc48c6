"""A self-contained HTML page with the benchmark's cost-quality chart (inline SVG) and table."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path

from thrifty.errors import RoutingError
from thrifty.routing.bench.results import ModelSummary

_WIDTH, _HEIGHT, _MARGIN = 720, 420, 60

Scale = Callable[[float], float]


def write_html_report(summaries: Sequence[ModelSummary], path: Path, *, title: str) -> None:
    """Write the chart and the summary table as one HTML file with no external assets."""
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}</style></head><body>"
        f"<h1>{escape(title)}</h1>{_svg(summaries)}{_table(summaries)}</body></html>\n"
    )
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise RoutingError(f"cannot write chart {path}: {exc.strerror}") from exc


def _svg(summaries: Sequence[ModelSummary]) -> str:
    points = [
        (s, float(s.cost_per_1000_usd), s.quality)
        for s in summaries
        if s.cost_per_1000_usd is not None and s.quality is not None
    ]
    if not points:
        return "<p>No model has both a cost and a quality to plot.</p>"
    max_cost = max(cost for _, cost, _ in points) or 1.0

    def x(cost: float) -> float:
        return _MARGIN + cost / max_cost * (_WIDTH - 2 * _MARGIN)

    def y(quality: float) -> float:
        return _HEIGHT - _MARGIN - quality * (_HEIGHT - 2 * _MARGIN)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        'role="img" aria-label="quality against cost per 1,000 requests">',
        _axes(max_cost, x, y),
    ]
    frontier = sorted((p for p in points if p[0].on_frontier), key=lambda p: p[1])
    if len(frontier) > 1:
        path = " ".join(f"{x(cost):.1f},{y(quality):.1f}" for _, cost, quality in frontier)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>')
    for summary, cost, quality in points:
        color = "#1f77b4" if summary.on_frontier else "#888"
        parts.append(
            f'<circle cx="{x(cost):.1f}" cy="{y(quality):.1f}" r="5" fill="{color}">'
            f"<title>{escape(summary.model)}: quality {quality:.3f}, "
            f"${cost:.4f} per 1,000</title></circle>"
            f'<text x="{x(cost) + 8:.1f}" y="{y(quality) - 8:.1f}" font-size="12">'
            f"{escape(summary.model)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _axes(max_cost: float, x: Scale, y: Scale) -> str:
    bottom, left = _HEIGHT - _MARGIN, _MARGIN
    lines = [
        f'<line x1="{left}" y1="{bottom}" x2="{_WIDTH - _MARGIN}" y2="{bottom}" stroke="#000"/>',
        f'<line x1="{left}" y1="{bottom}" x2="{left}" y2="{_MARGIN}" stroke="#000"/>',
        f'<text x="{_WIDTH / 2}" y="{_HEIGHT - 15}" text-anchor="middle" font-size="13">'
        "cost per 1,000 requests (USD)</text>",
        f'<text x="15" y="{_HEIGHT / 2}" transform="rotate(-90 15 {_HEIGHT / 2})" '
        'text-anchor="middle" font-size="13">quality (mean grade)</text>',
    ]
    for step in range(5):
        quality = step / 4
        cost = max_cost * step / 4
        lines.append(
            f'<text x="{left - 8}" y="{y(quality) + 4:.1f}" text-anchor="end" '
            f'font-size="11">{quality:.2f}</text>'
        )
        lines.append(
            f'<text x="{x(cost):.1f}" y="{bottom + 18}" text-anchor="middle" '
            f'font-size="11">{cost:.4g}</text>'
        )
    return "".join(lines)


def _table(summaries: Sequence[ModelSummary]) -> str:
    header = (
        "<tr><th>model</th><th>requests</th><th>errors</th><th>quality</th>"
        "<th>cost per 1,000 (USD)</th><th>p50 latency (ms)</th><th>Pareto</th></tr>"
    )
    rows = []
    for s in summaries:
        quality = "-" if s.quality is None else f"{s.quality:.3f}"
        cost = "unpriced" if s.cost_per_1000_usd is None else str(s.cost_per_1000_usd)
        latency = "-" if s.latency_p50_ms is None else f"{s.latency_p50_ms:.1f}"
        rows.append(
            f"<tr><td>{escape(s.model)}</td><td>{s.requests}</td><td>{s.errors}</td>"
            f"<td>{quality}</td><td>{cost}</td><td>{latency}</td>"
            f"<td>{'yes' if s.on_frontier else ''}</td></tr>"
        )
    return f"<table>{header}{''.join(rows)}</table>"
