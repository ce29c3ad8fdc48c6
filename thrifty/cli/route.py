"""The `thrifty route` commands: train a learned router and evaluate it honestly."""

from __future__ import annotations

import json
import logging
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from thrifty.errors import RoutingError
from thrifty.pricing import CustomPrice
from thrifty.routing.costs import DEFAULT_OUTPUT_TOKENS, ModelPrice, estimate_costs
from thrifty.routing.evaluation import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_CONFIDENCE,
    RECOVERY_TARGETS,
    Evaluation,
    Interval,
    MethodResult,
    evaluate,
)
from thrifty.routing.learned import DEFAULT_FOLDS, LearnedRouter, TrainingOptions, train_router
from thrifty.routing.outcomes import OutcomeSet
from thrifty.routing.plots import plots_available, write_routing_curve
from thrifty.routing.protocol import score_cross_validated, score_with_router
from thrifty.routing.readers import read_outcomes

logger = logging.getLogger(__name__)

route_app = typer.Typer(
    help="Train a learned router and evaluate it against random and oracle routing.",
    no_args_is_help=True,
)

DataArgument = Annotated[
    list[Path],
    typer.Argument(
        help="Outcome files or folders: RouteLLM CSV, MT-Bench judgements.jsonl, "
        "or JSONL with prompt, model, score and optional cost."
    ),
]
ContaminatedOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--contaminated",
        help="More contamination lists (JSONL with eval_prompt) beside the "
        "contaminated_prompts.jsonl found next to the data.",
    ),
]
FoldsOption = Annotated[
    int, typer.Option(min=2, help="Cross-validation folds, split by file or domain.")
]


def register(app: typer.Typer) -> None:
    """Add the ``route`` command group to the app."""
    app.add_typer(route_app, name="route")


@route_app.command("train")
def train_command(
    data: DataArgument,
    *,
    strong: Annotated[str, typer.Option(help="The strong (expensive) model's name in the data.")],
    weak: Annotated[str, typer.Option(help="The weak (cheaper) model's name in the data.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Router file to write.")] = Path(
        "router.json"
    ),
    folds: FoldsOption = DEFAULT_FOLDS,
    iterations: Annotated[int, typer.Option(min=1, help="Optimizer iterations.")] = 200,
    l2: Annotated[float, typer.Option(min=0.0, help="L2 regularization strength.")] = 1e-4,
    contaminated: ContaminatedOption = None,
) -> None:
    """Train a learned router on outcome files and write it to a router file."""
    outcomes = read_outcomes(data, contaminated=contaminated or [])
    paired = outcomes.pair(strong, weak)
    options = TrainingOptions(l2=l2, iterations=iterations, folds=folds)
    router = train_router(paired, options)
    router.save(output)

    apgr = router.training.cross_validated_apgr
    console = Console()
    console.print(f"wrote {output}", markup=False, highlight=False)
    console.print(
        f"trained on {len(paired):,} prompts from {len(set(paired.groups))} groups "
        f"({outcomes.dropped_contaminated} contaminated prompts dropped)",
        markup=False,
        highlight=False,
    )
    cv = "not computed (too few prompts)" if apgr is None else f"{apgr:.4f} (random: 0.5)"
    console.print(f"{folds}-fold cross-validated APGR on the training data: {cv}", markup=False)


@route_app.command("eval")
def eval_command(
    data: DataArgument,
    *,
    router_file: Annotated[
        Path | None,
        typer.Option(
            "--router",
            help="Router file to evaluate; without it, routers are trained and evaluated "
            "by cross-validation over the data's files.",
        ),
    ] = None,
    strong: Annotated[
        str | None, typer.Option(help="Strong model (default: the router file's).")
    ] = None,
    weak: Annotated[
        str | None, typer.Option(help="Weak model (default: the router file's).")
    ] = None,
    folds: FoldsOption = DEFAULT_FOLDS,
    bootstrap: Annotated[
        int, typer.Option(min=0, help="Bootstrap resamples for confidence intervals.")
    ] = DEFAULT_BOOTSTRAP,
    confidence: Annotated[
        float, typer.Option(min=0.5, max=0.999, help="Confidence level of the intervals.")
    ] = DEFAULT_CONFIDENCE,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap resampling.")] = 0,
    strong_provider: Annotated[
        str | None, typer.Option(help="Provider whose list price the strong model gets.")
    ] = None,
    weak_provider: Annotated[
        str | None, typer.Option(help="Provider whose list price the weak model gets.")
    ] = None,
    strong_price: Annotated[
        str | None,
        typer.Option(help="Custom strong-model price: INPUT,OUTPUT in USD per million tokens."),
    ] = None,
    weak_price: Annotated[
        str | None,
        typer.Option(help="Custom weak-model price: INPUT,OUTPUT in USD per million tokens."),
    ] = None,
    output_tokens: Annotated[
        int, typer.Option(min=0, help="Output tokens assumed per call when no answer is recorded.")
    ] = DEFAULT_OUTPUT_TOKENS,
    json_path: Annotated[
        Path, typer.Option("--json-out", help="File for the figures as JSON.")
    ] = Path("route_eval.json"),
    png_path: Annotated[
        Path, typer.Option("--png", help="File for the curve as a PNG (needs thrifty[plots]).")
    ] = Path("route_eval.png"),
    no_png: Annotated[bool, typer.Option("--no-png", help="Draw no PNG.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    contaminated: ContaminatedOption = None,
) -> None:
    """Evaluate routing on held-out outcomes: router against random and oracle."""
    outcomes = read_outcomes(data, contaminated=contaminated or [])
    router = LearnedRouter.load(router_file) if router_file is not None else None
    paired = outcomes.pair(*_pair_names(outcomes, router, strong, weak))
    if router is not None:
        held_out = score_with_router(paired, router)
    else:
        held_out = score_cross_validated(paired, TrainingOptions(folds=folds))

    costs = estimate_costs(
        held_out.paired,
        ModelPrice(paired.strong, strong_provider, _custom_price(strong_price, "--strong-price")),
        ModelPrice(paired.weak, weak_provider, _custom_price(weak_price, "--weak-price")),
        output_tokens=output_tokens,
    )
    protocol = {**held_out.protocol, "dropped_contaminated": outcomes.dropped_contaminated}
    evaluation = evaluate(
        held_out.paired,
        held_out.weak_ok,
        costs=costs,
        bootstrap=bootstrap,
        confidence=confidence,
        seed=seed,
        protocol=protocol,
    )
    _write_outputs(evaluation, json_path, None if no_png else png_path)
    if as_json:
        typer.echo(json.dumps(evaluation.to_dict()))
    else:
        _print_evaluation(evaluation, Console())


def _pair_names(
    outcomes: OutcomeSet, router: LearnedRouter | None, strong: str | None, weak: str | None
) -> tuple[str, str]:
    strong = strong or (router.strong if router else None)
    weak = weak or (router.weak if router else None)
    if strong and weak:
        return strong, weak
    raise RoutingError(
        f"name the models with --strong and --weak; the files score {', '.join(outcomes.models)}"
    )


def _custom_price(text: str | None, option: str) -> CustomPrice | None:
    if text is None:
        return None
    parts = text.split(",")
    try:
        values = [Decimal(part.strip()) for part in parts]
    except InvalidOperation:
        values = []
    if len(values) != 2:
        raise typer.BadParameter(
            f"{text!r} is not INPUT,OUTPUT; give USD per million tokens, such as 10,30",
            param_hint=option,
        )
    return CustomPrice(input_mtok=values[0], output_mtok=values[1])


def _write_outputs(evaluation: Evaluation, json_path: Path, png_path: Path | None) -> None:
    try:
        json_path.write_text(json.dumps(evaluation.to_dict(), indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise RoutingError(f"cannot write {json_path}: {exc.strerror}") from exc
    if png_path is None:
        return
    if plots_available():
        write_routing_curve(evaluation, png_path)
    else:
        logger.warning("matplotlib is not installed, so %s was not drawn", png_path)


def _print_evaluation(evaluation: Evaluation, console: Console) -> None:
    protocol = evaluation.protocol
    console.print(
        f"{evaluation.prompts:,} held-out prompts in {len(evaluation.groups)} groups, "
        f"evaluated by {protocol.get('mode')}; "
        f"{protocol.get('dropped_contaminated', 0)} contaminated and "
        f"{protocol.get('dropped_training_overlap', 0)} training prompts dropped",
        markup=False,
        highlight=False,
    )
    console.print(
        f"quality: {evaluation.strong} {evaluation.strong_quality:.4f}, "
        f"{evaluation.weak} {evaluation.weak_quality:.4f}",
        markup=False,
        highlight=False,
    )
    console.print(_summary_table(evaluation))
    console.print(_curve_table(evaluation))
    for note in evaluation.costs.notes if evaluation.costs else ():
        console.print(f"cost: {note}", markup=False, highlight=False)


def _summary_table(evaluation: Evaluation) -> Table:
    level = f"{evaluation.confidence:.0%}"
    table = Table(title=f"Router against baselines ({level} bootstrap intervals)")
    table.add_column("method")
    table.add_column("APGR", justify="right")
    for target in RECOVERY_TARGETS:
        table.add_column(f"CPT({target:.0%})", justify="right")
    for result in evaluation.methods:
        table.add_row(
            result.name, _with_interval(result.apgr, result.apgr_interval), *_cpts(result)
        )
    return table


def _cpts(result: MethodResult) -> list[str]:
    cells = []
    for target in RECOVERY_TARGETS:
        share = result.calls_to_recover[target]
        interval = result.calls_intervals[target]
        if share is None:
            cells.append("-")
        else:
            cells.append(_with_interval(share * 100, _scaled(interval), digits=1, suffix="%"))
    return cells


def _curve_table(evaluation: Evaluation) -> Table:
    table = Table(title="Quality and cost as the share of strong calls grows")
    table.add_column("strong calls", justify="right")
    for result in evaluation.methods:
        table.add_column(f"{result.name} quality", justify="right")
        table.add_column(f"{result.name} cost (USD)", justify="right")
    rows = zip(*(result.points for result in evaluation.methods), strict=True)
    for points in rows:
        cells = [f"{points[0].strong_share:.0%}"]
        for point in points:
            cells.append(f"{point.quality:.4f}")
            cells.append("unpriced" if point.cost_usd is None else f"{point.cost_usd:.4f}")
        table.add_row(*cells)
    return table


def _scaled(interval: Interval | None) -> Interval | None:
    return None if interval is None else Interval(interval.low * 100, interval.high * 100)


def _with_interval(
    value: float, interval: Interval | None, *, digits: int = 3, suffix: str = ""
) -> str:
    if interval is None:
        return f"{value:.{digits}f}{suffix}"
    return f"{value:.{digits}f}{suffix} [{interval.low:.{digits}f}, {interval.high:.{digits}f}]"
