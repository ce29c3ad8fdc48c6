"""Model benchmarking: run an evaluation set through the gateway, grade, compare."""

from thrifty.routing.bench.evalset import EvalItem, GraderSpec, read_eval_set
from thrifty.routing.bench.grading import Grade, JudgeClient, grade_answer
from thrifty.routing.bench.results import BenchResult, ModelSummary, summarize
from thrifty.routing.bench.runner import BenchRun, run_benchmark

__all__ = [
    "BenchResult",
    "BenchRun",
    "EvalItem",
    "Grade",
    "GraderSpec",
    "JudgeClient",
    "ModelSummary",
    "grade_answer",
    "read_eval_set",
    "run_benchmark",
    "summarize",
]
