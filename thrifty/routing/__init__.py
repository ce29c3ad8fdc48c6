"""Model routing: routing decisions, router training and evaluation, model benchmarks.

The gateway calls ``Router.decide`` per request (routes come from the
``routing:`` section of thrifty.yaml, parsed by ``parse_routing_config``).
``thrifty route train|eval`` and ``thrifty bench models`` build on the
readers, the learned router and the evaluation here.
"""

from thrifty.routing.checks import Answer, AnswerChecks, CheckFailure, answer_of
from thrifty.routing.config import RoutingConfig, parse_routing_config
from thrifty.routing.evaluation import Evaluation, evaluate
from thrifty.routing.learned import LearnedRouter, TrainingOptions, train_router
from thrifty.routing.outcomes import Outcome, OutcomeSet, PairedOutcomes
from thrifty.routing.readers import read_outcomes
from thrifty.routing.router import (
    BudgetDowngrade,
    CascadePolicy,
    Decision,
    LearnedPolicy,
    Router,
    RulesPolicy,
    should_fall_back,
)

__all__ = [
    "Answer",
    "AnswerChecks",
    "BudgetDowngrade",
    "CascadePolicy",
    "CheckFailure",
    "Decision",
    "Evaluation",
    "LearnedPolicy",
    "LearnedRouter",
    "Outcome",
    "OutcomeSet",
    "PairedOutcomes",
    "Router",
    "RoutingConfig",
    "RulesPolicy",
    "TrainingOptions",
    "answer_of",
    "evaluate",
    "parse_routing_config",
    "read_outcomes",
    "should_fall_back",
    "train_router",
]
