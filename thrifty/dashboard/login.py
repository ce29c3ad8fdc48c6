"""The login form, logout, and the ASGI wrapper that turns away requests without a session."""

from __future__ import annotations

import html
import logging
from urllib.parse import parse_qs, quote

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from thrifty.dashboard.auth import COOKIE_NAME, COOKIE_PATH, DashboardAuth, Role
from thrifty.errors import RequestError

logger = logging.getLogger(__name__)

AUTH_SCOPE_KEY = "thrifty.dashboard_auth"
ROLE_SCOPE_KEY = "thrifty.role"
# Paths below the mount that need no session: the form and its style sheet.
PUBLIC_PATHS = frozenset({"/login", "/static/style.css"})
MAX_FORM_BYTES = 16 * 1024


class LoginRequired:
    """Serve the dashboard only to requests with a valid session, once a key is set.

    A page request without one is redirected to the login form, and a data
    request gets 401. A RequestError from an endpoint is sent back with its
    status and message as JSON.
    """

    def __init__(self, app: ASGIApp, auth: DashboardAuth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[AUTH_SCOPE_KEY] = self.auth
        path = _relative_path(scope)
        role = self.auth.session_role(Request(scope).cookies.get(COOKIE_NAME))
        scope[ROLE_SCOPE_KEY] = role
        if self.auth.required and role is None and path not in PUBLIC_PATHS:
            await _turn_away(scope, path)(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except RequestError as exc:
            response = _json_error(exc.status, exc.message, exc.param)
            await response(scope, receive, send)


def _relative_path(scope: Scope) -> str:
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    relative = path[len(root) :] if root and path.startswith(root) else path
    return relative or "/"


def _turn_away(scope: Scope, path: str) -> Response:
    if path.startswith("/api/"):
        return _json_error(401, "log in to the dashboard first: POST your key to /ui/login")
    target = scope.get("root_path", "") + path
    query = scope.get("query_string", b"").decode("latin-1")
    if query:
        target += f"?{query}"
    return RedirectResponse(f"{scope.get('root_path', '')}/login?next={quote(target)}", 303)


def _json_error(status: int, message: str, param: str | None = None) -> Response:
    body = orjson.dumps({"error": {"message": message, "param": param}})
    return Response(body, status_code=status, media_type="application/json")


async def login_form(request: Request) -> Response:
    auth = _auth(request)
    if not auth.required:
        return RedirectResponse(_next_target(request, request.query_params.get("next")), 303)
    return _form_page(request, request.query_params.get("next"), error=None, status=200)


async def login_submit(request: Request) -> Response:
    """Check the posted key; on success set the session cookie and go to ``next``."""
    auth = _auth(request)
    fields = await _form_fields(request)
    next_path = fields.get("next")
    if not auth.required:
        return RedirectResponse(_next_target(request, next_path), 303)

    client = request.client.host if request.client else "unknown"
    if not auth.allow_attempt(client):
        logger.warning("dashboard login from %s rejected: too many failed attempts", client)
        return _form_page(
            request, next_path, error="Too many failed attempts; wait a minute.", status=429
        )
    role = auth.role_for_key(fields.get("key", ""))
    if role is None:
        auth.record_failure(client)
        logger.info("dashboard login from %s failed: the key matched no configured key", client)
        return _form_page(request, next_path, error="That key is not valid.", status=401)

    response = RedirectResponse(_next_target(request, next_path), 303)
    _set_session(request, response, auth, role)
    logger.info("dashboard login from %s as %s", client, role)
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse(f"{request.scope.get('root_path', '')}/login", 303)
    response.delete_cookie(COOKIE_NAME, path=COOKIE_PATH)
    return response


def _set_session(request: Request, response: Response, auth: DashboardAuth, role: Role) -> None:
    response.set_cookie(
        COOKIE_NAME,
        auth.new_session(role),
        max_age=int(auth.session_s),
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


async def _form_fields(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise RequestError(
            413, f"the login form is {len(body)} bytes; the limit is {MAX_FORM_BYTES}"
        )
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in parsed.items() if values}


def _next_target(request: Request, next_path: str | None) -> str:
    """Return ``next`` when it is a dashboard path on this host, else the dashboard's start."""
    root = request.scope.get("root_path", "")
    start = f"{root}/"
    if not next_path or not next_path.startswith(f"{root}/") or next_path.startswith("//"):
        return start
    if "\\" in next_path or "\n" in next_path or "\r" in next_path:
        return start
    return next_path


def _auth(request: Request) -> DashboardAuth:
    auth = request.scope.get(AUTH_SCOPE_KEY)
    assert isinstance(auth, DashboardAuth), "LoginRequired sets the dashboard auth"
    return auth


def _form_page(
    request: Request, next_path: str | None, *, error: str | None, status: int
) -> Response:
    root = html.escape(request.scope.get("root_path", ""))
    target = html.escape(_next_target(request, next_path))
    message = (
        "" if error is None else f'<p class="login-error" role="alert">{html.escape(error)}</p>'
    )
    page = _LOGIN_PAGE.format(root=root, next=target, error=message)
    return HTMLResponse(page, status_code=status, headers={"cache-control": "no-store"})


_LOGIN_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Thrifty dashboard: log in</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{root}/static/style.css">
</head>
<body class="login-page">
<main class="login-box">
<h1>Thrifty</h1>
<p>Enter the master key or the read-only dashboard key.</p>
{error}
<form method="post" action="{root}/login">
<input type="hidden" name="next" value="{next}">
<label for="key">Key</label>
<input id="key" name="key" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button>
</form>
</main>
</body>
</html>
"""
