"""The sandbox's state, and the checks every request passes before its endpoint runs."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field

import orjson
from starlette.requests import Request

from thrifty.sandbox.batches import BatchRegistry
from thrifty.sandbox.catalog import find_model
from thrifty.sandbox.controls import (
    ANSWER_HEADER,
    FAULT_HEADER,
    FLEX_REJECT_HEADER,
    LATENCY_HEADER,
    AnswerControl,
    Fault,
    Pacing,
    parse_answer,
    parse_fault,
    parse_pacing,
)
from thrifty.sandbox.errors import ApiError, Family, new_request_id, request_id_header
from thrifty.sandbox.prompt_cache import AnthropicPromptCache, OpenAIPromptCache
from thrifty.sandbox.settings import SandboxSettings

logger = logging.getLogger(__name__)


@dataclass
class SandboxState:
    """Settings and the mutable parts of one sandbox app: caches, the flex draw, batches."""

    settings: SandboxSettings
    openai_cache: OpenAIPromptCache = field(init=False)
    anthropic_cache: AnthropicPromptCache = field(init=False)
    flex_draws: random.Random = field(init=False)
    batches: BatchRegistry = field(default_factory=BatchRegistry)

    def __post_init__(self) -> None:
        settings = self.settings
        self.openai_cache = OpenAIPromptCache(
            settings.openai_cache_ttl_s, settings.prompt_cache_max_entries, settings.clock
        )
        self.anthropic_cache = AnthropicPromptCache(
            settings.prompt_cache_max_entries, settings.clock
        )
        self.flex_draws = random.Random(settings.seed)


@dataclass(frozen=True, slots=True)
class Admission:
    """Context of an admitted request: its family, id, pacing, disconnect fault and answer."""

    state: SandboxState
    family: Family
    request_id: str
    pacing: Pacing
    disconnect_after_chunks: int | None
    answer: str = "filler"

    @property
    def settings(self) -> SandboxSettings:
        return self.state.settings

    @property
    def headers(self) -> dict[str, str]:
        return {request_id_header(self.family): self.request_id}


def sandbox_state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


async def admit(request: Request, family: Family) -> Admission:
    """Authenticate a request and apply the faults its headers request."""
    state = sandbox_state(request)
    authenticate(request, family)
    fault = parse_fault(request.headers.get(FAULT_HEADER))
    answer = parse_answer(request.headers.get(ANSWER_HEADER))
    pacing = parse_pacing(request.headers.get(LATENCY_HEADER), state.settings)
    if fault.models or answer.models:
        fault, answer = _for_model(await _requested_model(request), fault, answer)

    if fault.delay_ms:
        # Read the body first: a client that gives up during the delay has
        # sent it already, and Starlette keeps it for the endpoint.
        await request.body()
        await asyncio.sleep(fault.delay_ms / 1000.0)
    if fault.rate_limited:
        raise _rate_limit_error(fault.retry_after_s or 0.0, family)
    if fault.status is not None:
        raise ApiError(
            fault.status, f"Sandbox fault: status {fault.status}, as requested by {FAULT_HEADER}."
        )
    return Admission(
        state, family, new_request_id(), pacing, fault.disconnect_after_chunks, answer.kind
    )


async def _requested_model(request: Request) -> str | None:
    """Return the body's ``model``; Starlette keeps the body for the endpoint to read again."""
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return None
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


def _for_model(
    model: str | None, fault: Fault, answer: AnswerControl
) -> tuple[Fault, AnswerControl]:
    """Drop the controls that target other models than ``model``."""
    if fault.models and model not in fault.models:
        fault = Fault()
    if answer.models and model not in answer.models:
        answer = AnswerControl()
    return fault, answer


def authenticate(request: Request, family: Family) -> None:
    """Require an API key, as the real APIs do; the sandbox accepts any key."""
    bearer = request.headers.get("authorization", "")
    scheme, _, token = bearer.partition(" ")
    has_bearer = scheme.lower() == "bearer" and token.strip() != ""
    if family == "anthropic":
        if has_bearer or request.headers.get("x-api-key", "").strip():
            return
        raise ApiError(401, "x-api-key header is required")
    if has_bearer:
        return
    raise ApiError(
        401,
        "You didn't provide an API key. Send it in an Authorization header using Bearer auth "
        "(Authorization: Bearer YOUR_KEY); the sandbox accepts any key.",
    )


def check_model(admission: Admission, model: str) -> None:
    """Reject a model the sandbox does not list, if ``reject_unknown_models`` is set."""
    if not admission.settings.reject_unknown_models or find_model(model) is not None:
        return
    if admission.family == "anthropic":
        raise ApiError(404, f"model: {model}")
    raise ApiError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        code="model_not_found",
    )


def check_flex_capacity(request: Request, admission: Admission, service_tier: str) -> None:
    """Reject a flex request with 429 when X-Sandbox-Flex-Reject or the seeded draw requires it."""
    if service_tier != "flex":
        return
    forced = request.headers.get(FLEX_REJECT_HEADER, "").strip().lower() in ("1", "true", "yes")
    rate = admission.settings.flex_rejection_rate
    drawn = rate > 0 and admission.state.flex_draws.random() < rate
    if not (forced or drawn):
        return
    logger.info("rejecting a flex request for lack of capacity (forced=%s)", forced)
    # OpenAI's flex guide: when flex lacks capacity, the API returns "429
    # Resource Unavailable" and does not charge the request. NOTE: the guide
    # shows no error body, so the code is the one public client code checks.
    raise ApiError(
        429,
        "Resource Unavailable: flex processing has no capacity for this request right now. "
        "Retry with exponential backoff, or send it with service_tier 'auto'.",
        code="resource_unavailable",
    )


def _rate_limit_error(retry_after_s: float, family: Family) -> ApiError:
    seconds = f"{retry_after_s:g}"
    message = (
        f"Sandbox fault: rate limit reached, as requested by {FAULT_HEADER}. "
        f"Please try again in {seconds}s."
    )
    headers = {"retry-after": seconds, "retry-after-ms": f"{retry_after_s * 1000:g}"}
    if family == "openai":
        headers["x-ratelimit-remaining-requests"] = "0"
        return ApiError(429, message, code="rate_limit_exceeded", headers=headers)
    headers["anthropic-ratelimit-requests-remaining"] = "0"
    return ApiError(429, message, headers=headers)
