"""Routes and their decisions: which model serves a request, and why.

A route lists candidate models from cheap to strong and one policy:

- ``RulesPolicy``: the first matching rule picks the model, else ``otherwise``;
- ``LearnedPolicy``: a trained router scores the probability that the weak
  model's answer is good enough; at or above the threshold the weak model
  serves, below it the strong one;
- ``CascadePolicy``: the cheapest model first, escalating to the next one
  when ``AnswerChecks`` reject its answer.

Before the policy, a budget downgrade sends every request to a cheaper model
once the caller's budget is spent beyond a fraction. ``Decision.fallbacks``
lists, in order, the models to try when the chosen one fails with an error
that ``should_fall_back`` accepts.

The gateway builds a ``Router`` per route from the ``routing:`` section of
thrifty.yaml (``thrifty.routing.config``) and calls ``decide`` per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from thrifty.routing.checks import Answer, AnswerChecks, CheckFailure, answer_of
from thrifty.routing.learned import LearnedRouter
from thrifty.routing.request_view import RequestView
from thrifty.routing.rules import AttributionLike, RequestFacts, Rule, first_match

PolicyName = Literal["rules", "learned", "cascade", "budget"]

# Statuses worth another model: rate limits, timeouts, server errors and
# Anthropic's 529 "overloaded". A 4xx other than 408 and 429 is the
# request's fault and would fail on any model.
FALLBACK_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})


@dataclass(frozen=True, slots=True)
class Decision:
    """Which model serves a request, by which policy, and what to try next.

    ``score`` is the learned router's probability that the weak model's
    answer is good enough (None for other policies). ``escalation`` is a
    cascade's next models, cheap to strong, tried when a check fails;
    ``fallbacks`` are tried in order when a call fails with an error.
    """

    route: str
    model: str
    policy: PolicyName
    reason: str
    score: float | None = None
    threshold: float | None = None
    fallbacks: tuple[str, ...] = ()
    escalation: tuple[str, ...] = ()

    def to_details(self) -> dict[str, Any]:
        """Return the decision as a JSON-ready dict for the ledger record."""
        details: dict[str, Any] = {
            "route": self.route,
            "model": self.model,
            "policy": self.policy,
            "reason": self.reason,
        }
        if self.score is not None:
            details["score"] = round(self.score, 6)
            details["threshold"] = self.threshold
        if self.fallbacks:
            details["fallbacks"] = list(self.fallbacks)
        if self.escalation:
            details["escalation"] = list(self.escalation)
        return details


@dataclass(frozen=True, slots=True)
class RulesPolicy:
    rules: tuple[Rule, ...]
    otherwise: str


@dataclass(frozen=True)
class LearnedPolicy:
    """A trained router with its threshold, between a weak and a strong model."""

    router: LearnedRouter
    weak: str
    strong: str
    threshold: float
    threshold_source: str


@dataclass(frozen=True)
class CascadePolicy:
    checks: AnswerChecks = field(default_factory=AnswerChecks)


@dataclass(frozen=True, slots=True)
class BudgetDowngrade:
    """Send every request to ``model`` once ``above`` of the budget is spent (0 to 1)."""

    above: float
    model: str


Policy = RulesPolicy | LearnedPolicy | CascadePolicy


class Router:
    """One route: its models (cheap to strong), policy, fallbacks and budget downgrade."""

    def __init__(
        self,
        name: str,
        models: tuple[str, ...],
        policy: Policy,
        *,
        fallbacks: tuple[str, ...] | None = None,
        budget_downgrade: BudgetDowngrade | None = None,
        retry_after_max_s: float | None = None,
    ) -> None:
        self.name = name
        self.models = models
        self.policy = policy
        self.configured_fallbacks = fallbacks
        self.budget_downgrade = budget_downgrade
        # A 429 or 503 whose Retry-After is at most this many seconds is
        # retried on the same model once, after that wait. None moves on at once.
        self.retry_after_max_s = retry_after_max_s

    @property
    def strongest(self) -> str:
        return self.models[-1]

    def decide(
        self,
        body: Mapping[str, Any],
        attribution: AttributionLike | None = None,
        *,
        key_id: str | None = None,
        budget_used: float | None = None,
    ) -> Decision:
        """Choose the model for one request.

        ``budget_used`` is the spent fraction of the tightest budget that
        applies to the request (0 to 1 and beyond), when budgets are on.
        """
        downgrade = self.budget_downgrade
        if downgrade is not None and budget_used is not None and budget_used >= downgrade.above:
            return self._decision(
                downgrade.model,
                "budget",
                f"{budget_used:.0%} of the budget is spent, at or above {downgrade.above:.0%}",
            )
        policy = self.policy
        if isinstance(policy, RulesPolicy):
            return self._by_rules(policy, RequestFacts(RequestView(body), attribution, key_id))
        if isinstance(policy, LearnedPolicy):
            return self._by_score(policy, RequestView(body))
        return self._decision(
            self.models[0],
            "cascade",
            "cascade starts with the cheapest model",
            escalation=self.models[1:],
        )

    def check_answer(
        self, body: Mapping[str, Any], response: Mapping[str, Any] | Answer
    ) -> CheckFailure | None:
        """Run the cascade's checks on a response body or an answer; None means keep it."""
        checks = self.policy.checks if isinstance(self.policy, CascadePolicy) else AnswerChecks()
        answer = response if isinstance(response, Answer) else answer_of(response)
        return checks.first_failure(answer, body)

    def fallbacks_for(self, model: str) -> tuple[str, ...]:
        """Return the models to try, in order, when ``model`` fails.

        The configured list, without the failed model; by default the
        route's other models, stronger ones first (nearest first), then
        cheaper ones (nearest first).
        """
        if self.configured_fallbacks is not None:
            return tuple(m for m in self.configured_fallbacks if m != model)
        if model not in self.models:
            return tuple(m for m in reversed(self.models))
        position = self.models.index(model)
        stronger = self.models[position + 1 :]
        cheaper = tuple(reversed(self.models[:position]))
        return stronger + cheaper

    def _by_rules(self, policy: RulesPolicy, facts: RequestFacts) -> Decision:
        match = first_match(policy.rules, facts)
        if match is None:
            return self._decision(policy.otherwise, "rules", "no rule matched")
        position, rule = match
        reason = f"rule {position + 1} matched: {rule.condition.describe()}"
        return self._decision(rule.model, "rules", reason)

    def _by_score(self, policy: LearnedPolicy, view: RequestView) -> Decision:
        score = policy.router.weak_ok_probability(view.prompt)
        weak_is_enough = score >= policy.threshold
        model = policy.weak if weak_is_enough else policy.strong
        comparison = "at or above" if weak_is_enough else "below"
        reason = (
            f"P(weak answer good enough) {score:.3f} is {comparison} the threshold "
            f"{policy.threshold:.3f} ({policy.threshold_source})"
        )
        return self._decision(model, "learned", reason, score=score, threshold=policy.threshold)

    def _decision(
        self,
        model: str,
        policy: PolicyName,
        reason: str,
        *,
        score: float | None = None,
        threshold: float | None = None,
        escalation: tuple[str, ...] = (),
    ) -> Decision:
        return Decision(
            route=self.name,
            model=model,
            policy=policy,
            reason=reason,
            score=score,
            threshold=threshold,
            fallbacks=self.fallbacks_for(model),
            escalation=escalation,
        )


def should_fall_back(status: int | None, *, timed_out: bool = False) -> bool:
    """Whether a failed call should be retried on the next fallback model.

    ``status`` is the provider's HTTP status, or None when no response came
    (the provider was unreachable).
    """
    return timed_out or status is None or status in FALLBACK_STATUSES
