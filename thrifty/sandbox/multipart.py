"""Reading ``multipart/form-data`` bodies, the encoding of OpenAI file uploads.

Starlette parses forms only with the python-multipart package installed. The
sandbox needs the two fields of an upload (``purpose`` and ``file``), so it
reads the format itself (RFC 7578): parts separated by ``--BOUNDARY`` lines,
each with its own headers, then ``--BOUNDARY--``.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

from thrifty.sandbox.errors import ApiError

_CRLF = b"\r\n"


@dataclass(frozen=True, slots=True)
class FormPart:
    """One field of a form: its value, and the file name when it is a file."""

    name: str
    content: bytes
    filename: str | None = None


def parse_form(body: bytes, content_type: str) -> dict[str, FormPart]:
    """Return a form's fields by name; raise ApiError 400 for a malformed body."""
    delimiter = b"--" + _boundary(content_type)
    if not body.startswith(delimiter):
        raise _malformed("the body does not start with the boundary")
    fields: dict[str, FormPart] = {}
    position = len(delimiter)
    while not body.startswith(b"--", position):
        if not body.startswith(_CRLF, position):
            raise _malformed("a boundary is not followed by a line break")
        headers_end = body.find(_CRLF + _CRLF, position + 2)
        if headers_end < 0:
            raise _malformed("a part has no blank line after its headers")
        content_start = headers_end + 4
        content_end = body.find(_CRLF + delimiter, content_start)
        if content_end < 0:
            raise _malformed("the closing boundary is missing")
        part = _part(body[position + 2 : headers_end], body[content_start:content_end])
        fields[part.name] = part
        position = content_end + 2 + len(delimiter)
    return fields


def _boundary(content_type: str) -> bytes:
    header = Message()
    header["content-type"] = content_type
    if header.get_content_type() != "multipart/form-data":
        raise ApiError(
            415,
            f"Unsupported Content-Type {content_type!r}; upload files as multipart/form-data.",
        )
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise _malformed("the Content-Type header has no boundary")
    return boundary.encode("latin-1")


def _part(raw_headers: bytes, content: bytes) -> FormPart:
    headers = Message()
    for line in raw_headers.decode("utf-8", "replace").split("\r\n"):
        header_name, separator, value = line.partition(":")
        if separator:
            headers[header_name.strip()] = value.strip()
    disposition = headers.get("content-disposition")
    if disposition is None:
        raise _malformed("a part has no Content-Disposition header")
    name = headers.get_param("name", header="content-disposition")
    if not isinstance(name, str) or not name:
        raise _malformed("a part has no field name")
    filename = headers.get_param("filename", header="content-disposition")
    return FormPart(name, content, filename if isinstance(filename, str) else None)


def _malformed(detail: str) -> ApiError:
    return ApiError(400, f"The multipart/form-data body is malformed: {detail}.")
