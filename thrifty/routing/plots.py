"""PNG charts with matplotlib, an optional extra: ``pip install 'thrifty[plots]'``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrifty.errors import RoutingError

if TYPE_CHECKING:
    from thrifty.routing.bench.results import ModelSummary
    from thrifty.routing.evaluation import Evaluation

_COLORS = {"router": "tab:blue", "random": "tab:gray", "oracle": "tab:green"}


def plots_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_routing_curve(evaluation: Evaluation, path: Path) -> None:
    """Draw quality against the share of strong calls for router, random and oracle."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 5), dpi=120)
    for result in evaluation.methods:
        axes.plot(
            result.curve.shares * 100,
            result.curve.qualities,
            label=f"{result.name} (APGR {result.apgr:.3f})",
            color=_COLORS.get(result.name),
            linewidth=1.6,
        )
    axes.axhline(
        evaluation.strong_quality,
        color="tab:red",
        linestyle="--",
        linewidth=1,
        label=f"{evaluation.strong} only",
    )
    axes.axhline(
        evaluation.weak_quality,
        color="black",
        linestyle=":",
        linewidth=1,
        label=f"{evaluation.weak} only",
    )
    axes.set_xlabel("calls to the strong model (%)")
    axes.set_ylabel("mean quality")
    axes.set_title(
        f"Routing {evaluation.strong} / {evaluation.weak} on {evaluation.prompts} prompts"
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    _save(plt, figure, path)


def write_pareto_chart(summaries: Sequence[ModelSummary], path: Path) -> None:
    """Draw each model's quality against its cost per 1,000 requests, frontier joined."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 5), dpi=120)
    priced = [s for s in summaries if s.cost_per_1000_usd is not None and s.quality is not None]
    for summary in priced:
        x, y = float(summary.cost_per_1000_usd or 0), float(summary.quality or 0)
        axes.scatter([x], [y], color="tab:blue" if summary.on_frontier else "tab:gray", zorder=3)
        axes.annotate(summary.model, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    frontier = sorted((s for s in priced if s.on_frontier), key=lambda s: s.cost_per_1000_usd or 0)
    if frontier:
        axes.plot(
            [float(s.cost_per_1000_usd or 0) for s in frontier],
            [float(s.quality or 0) for s in frontier],
            color="tab:blue",
            linewidth=1.2,
            label="Pareto frontier",
        )
        axes.legend(fontsize=8)
    axes.set_xlabel("cost per 1,000 requests (USD)")
    axes.set_ylabel("quality (mean grade)")
    axes.set_title("Model quality against cost")
    axes.grid(alpha=0.3)
    _save(plt, figure, path)


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RoutingError(
            "drawing a PNG needs matplotlib; install it with pip install 'thrifty[plots]'"
        ) from exc
    return plt


def _save(plt: Any, figure: Any, path: Path) -> None:
    try:
        figure.tight_layout()
        figure.savefig(path)
    except OSError as exc:
        raise RoutingError(f"cannot write chart {path}: {exc.strerror}") from exc
    finally:
        plt.close(figure)
