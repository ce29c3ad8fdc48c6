"""Running a feature's transforms on one request body and reporting what each removed."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from thrifty.errors import PromptError
from thrifty.prompts.compress import Compress, Compressor
from thrifty.prompts.counting import TokenCounter
from thrifty.prompts.dialect import Api, Dialect, detect_api, dialect_for
from thrifty.prompts.layout import Layout
from thrifty.prompts.lossless import Dedupe, DropEmpty, MinifyJson, Whitespace
from thrifty.prompts.protect import Protection
from thrifty.prompts.settings import Settings
from thrifty.prompts.transform import Context, Transform
from thrifty.prompts.trim import Trim

# Keys of a transform's change counts that describe the request instead of
# counting edits. A transform whose other counts are all zero left the body
# as it was.
REPORT_ONLY_KEYS = frozenset({"compressible_tokens", "kept_tokens", "moved_tokens", "over_budget"})

_TRANSFORMS: dict[str, Transform] = {
    transform.name: transform
    for transform in (DropEmpty(), Whitespace(), MinifyJson(), Dedupe(), Layout(), Trim())
}


@dataclass(frozen=True, slots=True)
class TransformReport:
    """The report of one transform: input tokens before and after it, and its change counts."""

    name: str
    input_tokens_before: int
    input_tokens_after: int
    changes: Mapping[str, int]

    @property
    def saved_tokens(self) -> int:
        return self.input_tokens_before - self.input_tokens_after

    def as_dict(self) -> dict[str, Any]:
        return {
            "input_tokens_before": self.input_tokens_before,
            "input_tokens_after": self.input_tokens_after,
            "saved_tokens": self.saved_tokens,
            **self.changes,
        }


@dataclass(frozen=True, slots=True)
class Optimization:
    """The optimized body of one request and the report of every transform run on it.

    ``body`` is the input object itself when nothing changed, else a new
    one. Token counts are offline estimates (see ``thrifty.prompts.counting``).
    """

    api: Api
    body: dict[str, Any]
    changed: bool
    input_tokens_before: int
    input_tokens_after: int
    transforms: tuple[TransformReport, ...]
    settings_name: str

    @property
    def saved_tokens(self) -> int:
        return self.input_tokens_before - self.input_tokens_after

    def as_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings_name,
            "input_tokens_before": self.input_tokens_before,
            "input_tokens_after": self.input_tokens_after,
            "saved_tokens": self.saved_tokens,
            "transforms": {report.name: report.as_dict() for report in self.transforms},
        }


def optimize(
    body: dict[str, Any],
    settings: Settings,
    *,
    api: Api | None = None,
    model: str | None = None,
    compressor: Compressor | None = None,
) -> Optimization:
    """Run the settings' transforms on a copy of ``body``, in their fixed order.

    ``api`` is detected from the body when not given and ``model`` (which
    picks the token encoding) is read from it. Raises PromptError when the
    body has no conversation to optimize, or when a transform changed
    protected text (a bug, reported rather than sent).
    """
    api = api or detect_api(body)
    dialect = dialect_for(api)
    counter = TokenCounter(dialect, model or str(body.get("model") or ""))
    context = Context(dialect, counter, settings.protect, settings)
    work = _copy(body)
    guarded = protected_texts(work, dialect, settings.protect)

    before = counter.body(work)
    tokens = before
    reports: list[TransformReport] = []
    for name in settings.ordered_transforms():
        changes = transform_named(name, settings, compressor).apply(work, context)
        edited = any(count for key, count in changes.items() if key not in REPORT_ONLY_KEYS)
        after = counter.body(work) if edited else tokens
        reports.append(TransformReport(name, tokens, after, changes))
        tokens = after

    changed = work != body
    if changed:
        check_protected(work, dialect, guarded, final_only=not settings.protect.patterns)
    return Optimization(
        api=api,
        body=work if changed else body,
        changed=changed,
        input_tokens_before=before,
        input_tokens_after=tokens,
        transforms=tuple(reports),
        settings_name=settings.name,
    )


def transform_named(name: str, settings: Settings, compressor: Compressor | None) -> Transform:
    if name == "compress":
        return Compress(compressor or compressor_for(settings.compress.method))
    return _TRANSFORMS[name]


@cache
def compressor_for(method: str) -> Compressor:
    """Return the compressor of a ``compress.method``; a model-based one is loaded once."""
    if method == "llmlingua2":
        from thrifty.prompts.llmlingua import LLMLinguaCompressor

        return LLMLinguaCompressor()
    from thrifty.prompts.compress import ExtractiveCompressor

    return ExtractiveCompressor()


def protected_texts(body: dict[str, Any], dialect: Dialect, protection: Protection) -> list[str]:
    """Return every protected text of a body: whole protected slots and pattern matches."""
    texts: list[str] = []
    slots = dialect.slots(body) if protection.patterns else dialect.final_slots(body)
    for slot in slots:
        text = slot.text
        if protection.covers_slot(slot):
            texts.append(text)
        else:
            texts += [text[start:end] for start, end in protection.spans(text)]
    return texts


def check_protected(
    body: dict[str, Any], dialect: Dialect, guarded: list[str], *, final_only: bool = False
) -> None:
    """Raise PromptError unless every guarded text still appears in the body's text.

    With ``final_only``, only the final user message is searched: enough
    when the guarded texts are that message's own.
    """
    if not guarded:
        return
    slots = dialect.final_slots(body) if final_only else dialect.slots(body)
    joined = "\x00".join(slot.text for slot in slots)
    for text in guarded:
        if text not in joined:
            raise PromptError(
                "a prompt transform changed protected text; the request was not optimized"
            )


def _copy(body: dict[str, Any]) -> dict[str, Any]:
    """Deep-copy a JSON body; orjson's round trip is several times faster than deepcopy."""
    try:
        copied = orjson.loads(orjson.dumps(body))
    except (TypeError, orjson.JSONEncodeError):
        return copy.deepcopy(body)
    assert isinstance(copied, dict)
    return copied
