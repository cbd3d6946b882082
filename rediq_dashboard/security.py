"""Who may see the dashboard (an auth hook, HTTP basic auth built in) and which POSTs may
change anything (a CSRF token; nothing at all in read-only mode)."""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

__all__ = ["CSRF_COOKIE", "CSRF_FIELD", "Auth", "basic_auth", "check_csrf", "csrf_token"]

#: An auth hook: given the request, return None to let it through, or the response that
#: refuses it (401 with a challenge, 403, a redirect to your login page...).
Auth = Callable[[Request], Awaitable[Response | None]]

CSRF_COOKIE = "rediq_dashboard_csrf"
CSRF_FIELD = "csrf_token"


def basic_auth(username: str, password: str, *, realm: str = "rediq") -> Auth:
    """An auth hook that asks for HTTP basic credentials and compares them in constant
    time. Serve the dashboard over HTTPS (or on loopback only) when you use it."""
    expected = f"{username}:{password}".encode()

    async def check(request: Request) -> Response | None:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            given = b""
        if scheme.lower() == "basic" and hmac.compare_digest(given, expected):
            return None
        return PlainTextResponse(
            "authentication required",
            status_code=401,
            headers={"WWW-Authenticate": f'Basic realm="{realm}"'},
        )

    return check


def csrf_token(request: Request) -> tuple[str, bool]:
    """The browser's CSRF token, and whether it is new (then set it as a cookie)."""
    token = request.cookies.get(CSRF_COOKIE, "")
    if len(token) >= 32:
        return token, False
    return secrets.token_urlsafe(32), True


def set_csrf_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        path=request.scope.get("root_path") or "/",
        secure=request.url.scheme == "https",
    )


def check_csrf(request: Request, submitted: str) -> str | None:
    """Why a POST is refused (None: it may proceed). The form's token must equal the
    cookie's (double submit), and a browser's Origin, when sent, must be this host."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not submitted or not hmac.compare_digest(cookie, submitted):
        return "missing or wrong CSRF token; reload the page and try again"
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        return f"cross-origin request from {origin} refused"
    return None
