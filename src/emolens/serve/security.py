"""API key, bind address check and the same-origin rule of ``emolens serve``.

When a key is set, every request (API, page, docs, static files, WebSocket) must carry
it, as any of:

- the ``X-API-Key`` header, or ``Authorization: Bearer KEY``;
- the ``api_key`` query parameter (a page or docs URL given this way answers with a
  cookie and a redirect to the same URL without the key, so the key leaves the
  address bar and the page's own requests carry the cookie);
- the ``emolens_key`` cookie (HttpOnly, SameSite=Strict: other sites' pages cannot use it).

Missing key: 401; wrong key: 403 (WebSocket: closed before the handshake completes,
which clients see as HTTP 403). A browser WebSocket from another origin is refused.

The key comes from ``--api-key-file PATH`` or ``EMOLENS_API_KEY`` (``--api-key KEY`` works
but shows in ``ps``). ``normalize_api_key`` is the one place deciding whether there is a
key: surrounding blanks are removed and a blank key is an error, never "no key", so the
bind check, ``ServeConfig`` and this middleware always agree.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, quote, urlencode

COOKIE = "emolens_key"
HEADER = "x-api-key"
QUERY = "api_key"
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost). Unknown names: False."""
    h = host.strip().strip("[]").lower()
    if h in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


class ApiKeyError(ValueError):
    """A key that cannot be used (blank, unprintable, an unreadable key file); the message says what to do."""


def normalize_api_key(key: str | None) -> str | None:
    """The one place deciding whether there is a key: None (no key) or the key, surrounding blanks removed.

    A key that is blank (``--api-key " "``, ``EMOLENS_API_KEY=" "``, an empty key file) is an
    error, never "no key": read as no key, it would open a public server to everyone.
    ``ServeConfig``, the bind check and the middleware all see the key this returns.
    """
    if key is None:
        return None
    if not isinstance(key, str):
        raise ApiKeyError(f"the API key must be text, got {type(key).__name__}")
    stripped = key.strip()
    if not stripped:
        raise ApiKeyError("the API key is blank; set a real key (e.g. from `python -c 'import secrets; "
                          "print(secrets.token_urlsafe(24))'`), or unset --api-key / EMOLENS_API_KEY to serve "
                          "this machine only")
    if not stripped.isascii() or not stripped.isprintable():
        raise ApiKeyError("the API key must be printable ASCII (HTTP headers carry no other characters reliably); "
                          "choose another key")
    return stripped


def read_api_key_file(path) -> str:
    """The key in a file (its one line; a trailing newline is fine), checked by ``normalize_api_key``."""
    from pathlib import Path

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ApiKeyError(f"{path}: cannot read the API key file ({why}); check the path") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        raise ApiKeyError(f"{path}: the API key file holds {len(lines)} lines; put the key alone on one line")
    try:
        key = normalize_api_key(text)
    except ApiKeyError as exc:
        raise ApiKeyError(f"{path}: {exc}") from None
    return key


def bind_problem(host: str, api_key: str | None, insecure: bool) -> str | None:
    """Why the server must not bind ``host`` (None when it may). A blank key raises ``ApiKeyError``."""
    if is_loopback(host) or normalize_api_key(api_key) is not None or insecure:
        return None
    return (f"refusing to listen on {host}: it is reachable from other machines and no API key is set. "
            "Set one with --api-key-file PATH (or the EMOLENS_API_KEY environment variable) and give it to the "
            "clients (header X-API-Key), or pass --insecure to serve without a key anyway, "
            "or keep the default --host 127.0.0.1 (this machine only).")


def cookie_value(key: str) -> str:
    """What the cookie holds: a digest of the key, not the key itself."""
    return hmac.new(key.encode(), b"emolens-serve-cookie", hashlib.sha256).hexdigest()


def _headers(scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in scope.get("headers", []):
        out.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))
    return out


def presented_key(scope) -> tuple[str | None, str | None]:
    """``(key, how)``: the key a request carries and where (header, bearer, query, cookie)."""
    headers = _headers(scope)
    if HEADER in headers:
        return headers[HEADER], "header"
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip(), "bearer"
    for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
        if k == QUERY:
            return v, "query"
    if "cookie" in headers:
        cookie = SimpleCookie()
        try:
            cookie.load(headers["cookie"])
        except Exception:
            cookie = SimpleCookie()
        if COOKIE in cookie:
            return cookie[COOKIE].value, "cookie"
    return None, None


def key_ok(given: str, how: str, key: str) -> bool:
    expected = cookie_value(key) if how == "cookie" else key
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def same_origin(scope) -> bool:
    """A browser WebSocket comes from a page this server served (or the client is no browser)."""
    headers = _headers(scope)
    origin = headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    host = headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/").lower() == host.lower()


LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>emolens: API key</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 32rem; margin: 4rem auto">
<h1>emolens</h1><p>{message}</p>
<form method="get"><label>API key <input name="api_key" type="password" autofocus required></label>
<button type="submit">Open</button></form></body></html>"""


class ApiKeyMiddleware:
    """ASGI middleware enforcing the API key on HTTP and WebSocket alike, and WebSocket same-origin."""

    def __init__(self, app, api_key: str | None):
        self.app = app
        self.api_key = normalize_api_key(api_key)

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        if kind == "websocket" and not same_origin(scope):
            return await _refuse_websocket(receive, send, "cross-origin WebSocket refused")
        if self.api_key is None:
            return await self.app(scope, receive, send)
        given, how = presented_key(scope)
        if given is not None and key_ok(given, how, self.api_key):
            if how == "query" and kind == "http" and scope.get("method") == "GET" and _wants_html(scope):
                return await _login_redirect(scope, send, self.api_key)
            return await self.app(scope, receive, send)
        status = 401 if given is None else 403
        if kind == "websocket":
            return await _refuse_websocket(receive, send, "API key missing" if status == 401 else "wrong API key")
        message = ("this server needs an API key: send it as the X-API-Key header (or Authorization: Bearer, "
                   "or ?api_key=)" if status == 401 else "wrong API key")
        if scope.get("method") == "GET" and _wants_html(scope):
            body = LOGIN_PAGE.format(message=message).encode()
            ctype = b"text/html; charset=utf-8"
        else:
            body = json.dumps({"detail": message}).encode()
            ctype = b"application/json"
        headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="emolens"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _refuse_websocket(receive, send, reason: str) -> None:
    """Close during the handshake (the client sees HTTP 403)."""
    message = await receive()   # websocket.connect
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1008, "reason": reason})


def _wants_html(scope) -> bool:
    return "text/html" in _headers(scope).get("accept", "")


async def _login_redirect(scope, send, key: str) -> None:
    """Set the cookie and send the browser to the same URL without the key."""
    rest = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            if k != QUERY]
    # The path arrives decoded (``/€``); a Location header is ASCII, so it goes back percent-encoded.
    path = quote(scope.get("root_path", "") + scope["path"], safe="/:@!$&'()*+,;=-._~")
    location = path + (f"?{urlencode(rest)}" if rest else "")
    cookie = f"{COOKIE}={cookie_value(key)}; Path=/; HttpOnly; SameSite=Strict"
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode("ascii")), (b"set-cookie", cookie.encode()),
                            (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
