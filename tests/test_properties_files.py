"""Property tests: batch, trace, config and import file parsers raise only ThriftyError."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.property_support import (
    PROPERTY_SETTINGS,
    consume,
    json_objects,
    json_values,
    lines_of,
    only_thrifty_errors,
    written_file,
)
from thrifty.batch.plan import plan_job
from thrifty.batch.providers import anthropic_result, openai_result
from thrifty.batch.validate import InputOptions
from thrifty.config import SECTION_PARSERS, load_config
from thrifty.ledger.imports import SOURCES, ImportOptions
from thrifty.traces.readers import FORMATS, read_trace

BATCH_KEYS = ("custom_id", "method", "url", "body", "params", "messages", "model", "max_tokens")
batch_keys = st.sampled_from(BATCH_KEYS) | st.text(max_size=6)
batch_lines = st.dictionaries(batch_keys, json_values, max_size=6)
chat_request = st.fixed_dictionaries(
    {
        "custom_id": st.text(max_size=6) | json_values,
        "method": st.sampled_from(["POST", "GET"]) | json_values,
        "url": st.sampled_from(["/v1/chat/completions", "/v1/embeddings", "/v1/x"]),
        "body": st.fixed_dictionaries(
            {"model": st.sampled_from(["gpt-4o-mini", ""]) | json_values},
            optional={"messages": json_values, "max_tokens": json_values},
        ),
    }
)
text_lines = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30), max_size=8
)


@PROPERTY_SETTINGS
@given(
    lines=st.lists(batch_lines | chat_request, max_size=6),
    suffix=st.sampled_from([".jsonl", ".json"]),
    provider=st.sampled_from([None, "openai", "anthropic"]),
)
def test_batch_plan_any_lines(lines: list[dict[str, Any]], suffix: str, provider: Any) -> None:
    content = json.dumps(lines).encode() if suffix == ".json" else lines_of(lines)
    with written_file(content, "input" + suffix) as path:
        only_thrifty_errors(lambda: plan_job(path, InputOptions(provider=provider)))


@PROPERTY_SETTINGS
@given(content=st.binary(max_size=300), suffix=st.sampled_from([".jsonl", ".json"]))
def test_batch_plan_any_bytes(content: bytes, suffix: str) -> None:
    with written_file(content, "input" + suffix) as path:
        only_thrifty_errors(lambda: plan_job(path, InputOptions()))


@PROPERTY_SETTINGS
@given(line=json_objects, result=json_objects)
def test_batch_result_lines_any_object(line: dict[str, Any], result: dict[str, Any]) -> None:
    for value in (line, {**line, "response": result}, {**line, "result": result}):
        only_thrifty_errors(partial(openai_result, value))
        only_thrifty_errors(partial(anthropic_result, value))


@PROPERTY_SETTINGS
@given(lines=text_lines, fmt=st.sampled_from([None, *FORMATS]))
def test_trace_readers_any_text(lines: list[str], fmt: str | None) -> None:
    headers = {
        "azure": "TIMESTAMP,ContextTokens,GeneratedTokens",
        "burstgpt": "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type",
    }
    header = [headers[fmt]] if fmt in headers else []
    content = "\n".join(header + lines).encode()
    with written_file(content, "trace.csv") as path:
        only_thrifty_errors(lambda: consume(read_trace(path, fmt)))


@PROPERTY_SETTINGS
@given(records=st.lists(json_objects, max_size=5))
def test_trace_mooncake_any_objects(records: list[dict[str, Any]]) -> None:
    with written_file(lines_of(records), "trace.jsonl") as path:
        only_thrifty_errors(lambda: consume(read_trace(path, "mooncake")))


@PROPERTY_SETTINGS
@given(content=st.binary(max_size=300))
def test_trace_detect_any_bytes(content: bytes) -> None:
    with written_file(content, "trace.csv") as path:
        only_thrifty_errors(lambda: consume(read_trace(path)))


sections = st.sampled_from(["providers", "gateway", "ledger", *SECTION_PARSERS])


@PROPERTY_SETTINGS
@given(document=st.dictionaries(sections, json_values | json_objects, max_size=3))
def test_config_any_sections(document: dict[str, Any]) -> None:
    text = yaml.safe_dump(json.loads(json.dumps(document, default=str)))
    with written_file(text.encode(), "thrifty.yaml") as path:
        only_thrifty_errors(lambda: load_config(path))


@PROPERTY_SETTINGS
@given(content=st.binary(max_size=200))
def test_config_any_bytes(content: bytes) -> None:
    with written_file(content, "thrifty.yaml") as path:
        only_thrifty_errors(lambda: load_config(path))


import_sources = st.sampled_from(sorted(SOURCES))


@PROPERTY_SETTINGS
@given(source=import_sources, document=json_values, lines=st.booleans())
def test_imports_any_json(source: str, document: Any, lines: bool) -> None:
    if lines and isinstance(document, list):
        content = lines_of(document)
    else:
        content = json.dumps(document).encode()
    suffix = ".jsonl" if lines else ".json"
    with written_file(content, "export" + suffix) as path:
        reader = SOURCES[source].read
        only_thrifty_errors(lambda: consume(reader(path, ImportOptions())))


@PROPERTY_SETTINGS
@given(source=import_sources, content=st.binary(max_size=300))
def test_imports_any_bytes(source: str, content: bytes) -> None:
    with written_file(content, "export.csv") as path:
        reader = SOURCES[source].read
        only_thrifty_errors(lambda: consume(reader(path, ImportOptions())))


@PROPERTY_SETTINGS
@given(rows=st.lists(st.lists(st.text(max_size=10), max_size=8), max_size=5))
def test_litellm_import_any_csv(rows: list[list[str]]) -> None:
    header = "request_id,startTime,endTime,model,custom_llm_provider,spend,prompt_tokens"
    body = "\n".join(",".join(row) for row in rows)
    with written_file(f"{header}\n{body}".encode(), "spend.csv") as path:
        only_thrifty_errors(lambda: consume(SOURCES["litellm"].read(path, ImportOptions())))
