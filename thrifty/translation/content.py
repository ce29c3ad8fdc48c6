"""Content parts: text, images and PDF documents in the OpenAI and Anthropic shapes.

OpenAI sends an image as ``{"type": "image_url", "image_url": {"url": ...}}``
where the URL is an ``http(s)`` address or a ``data:`` URL; Anthropic as
``{"type": "image", "source": {...}}`` with a ``base64`` source (``media_type``
and ``data``) or a ``url`` source. A PDF is an OpenAI ``file`` part with
``file_data`` (a data URL) and an Anthropic ``document`` block.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thrifty.translation.checks import as_list, as_object, as_text, invalid, untranslatable

ANTHROPIC = "Anthropic Messages"
OPENAI = "OpenAI Chat Completions"
DEFAULT_PDF_NAME = "document.pdf"


def parse_data_url(url: str, param: str) -> tuple[str, str]:
    """Split ``data:<media type>;base64,<data>`` into the media type and the data."""
    header, sep, data = url.partition(",")
    if not sep or not header.startswith("data:") or not header.endswith(";base64"):
        raise invalid(
            param,
            "is a data URL that is not base64-encoded",
            "send data:<media type>;base64,<data>",
        )
    media_type = header[len("data:") : -len(";base64")]
    if not media_type:
        raise invalid(param, "is a data URL without a media type", "add one, e.g. image/png")
    return media_type, data


def data_url(media_type: str, data: str) -> str:
    return f"data:{media_type};base64,{data}"


def openai_text(content: object, param: str) -> str:
    """Join an OpenAI content (a string or text parts) into one string."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    texts: list[str] = []
    for index, raw in enumerate(as_list(content, param)):
        where = f"{param}[{index}]"
        part = as_object(raw, where)
        kind = part.get("type")
        if kind not in ("text", "refusal"):
            raise untranslatable(
                f"{where}.type", ANTHROPIC, f"only text parts can go here, not {kind!r}"
            )
        texts.append(as_text(part.get(kind), f"{where}.{kind}"))
    return "".join(texts)


def openai_part_to_block(part: Mapping[str, Any], param: str) -> dict[str, Any]:
    """Map one OpenAI user content part to an Anthropic content block."""
    kind = part.get("type")
    if kind == "text":
        return {"type": "text", "text": as_text(part.get("text"), f"{param}.text")}
    if kind == "image_url":
        image = as_object(part.get("image_url"), f"{param}.image_url")
        # ``detail`` (low/high/auto) has no Anthropic counterpart; Claude sizes
        # images itself, so dropping it changes cost, never the answer's validity.
        url = as_text(image.get("url"), f"{param}.image_url.url")
        return {"type": "image", "source": _image_source(url, f"{param}.image_url.url")}
    if kind == "file":
        return _pdf_block(as_object(part.get("file"), f"{param}.file"), f"{param}.file")
    raise untranslatable(
        f"{param}.type",
        ANTHROPIC,
        f"content parts of type {kind!r} cannot be sent; use text, image_url or a PDF file",
    )


def _image_source(url: str, param: str) -> dict[str, Any]:
    if url.startswith("data:"):
        media_type, data = parse_data_url(url, param)
        return {"type": "base64", "media_type": media_type, "data": data}
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    raise invalid(param, "is neither an http(s) URL nor a data URL", "send one of those")


def _pdf_block(file: Mapping[str, Any], param: str) -> dict[str, Any]:
    if "file_id" in file:
        raise untranslatable(
            f"{param}.file_id",
            ANTHROPIC,
            "OpenAI file ids are not readable by Anthropic; send the file as file_data",
        )
    media_type, data = parse_data_url(as_text(file.get("file_data"), f"{param}.file_data"), param)
    if media_type != "application/pdf":
        raise untranslatable(
            f"{param}.file_data", ANTHROPIC, f"only PDF files can be sent, not {media_type}"
        )
    block: dict[str, Any] = {
        "type": "document",
        "source": {"type": "base64", "media_type": media_type, "data": data},
    }
    filename = file.get("filename")
    if isinstance(filename, str) and filename:
        block["title"] = filename
    return block


def anthropic_block_to_part(block: Mapping[str, Any], param: str) -> dict[str, Any]:
    """Map one Anthropic user content block (text, image, document) to an OpenAI part."""
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": as_text(block.get("text"), f"{param}.text")}
    if kind == "image":
        source = as_object(block.get("source"), f"{param}.source")
        return {"type": "image_url", "image_url": {"url": _source_url(source, f"{param}.source")}}
    if kind == "document":
        return _document_part(block, param)
    raise untranslatable(
        f"{param}.type",
        OPENAI,
        f"content blocks of type {kind!r} cannot be sent; use text, image or a PDF document",
    )


def _source_url(source: Mapping[str, Any], param: str) -> str:
    kind = source.get("type")
    if kind == "base64":
        media_type = as_text(source.get("media_type"), f"{param}.media_type")
        return data_url(media_type, as_text(source.get("data"), f"{param}.data"))
    if kind == "url":
        return as_text(source.get("url"), f"{param}.url")
    raise untranslatable(
        f"{param}.type", OPENAI, f"image sources of type {kind!r} cannot be sent; use base64 or url"
    )


def _document_part(block: Mapping[str, Any], param: str) -> dict[str, Any]:
    source = as_object(block.get("source"), f"{param}.source")
    kind = source.get("type")
    if kind == "text":
        return {"type": "text", "text": as_text(source.get("data"), f"{param}.source.data")}
    if kind != "base64" or source.get("media_type") != "application/pdf":
        raise untranslatable(
            f"{param}.source",
            OPENAI,
            "only base64 PDF and plain-text documents can be sent; embed others as base64 PDF",
        )
    title = block.get("title")
    filename = title if isinstance(title, str) and title else DEFAULT_PDF_NAME
    file_data = data_url("application/pdf", as_text(source.get("data"), f"{param}.source.data"))
    return {"type": "file", "file": {"filename": filename, "file_data": file_data}}
