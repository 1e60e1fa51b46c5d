"""Who may do what over HTTP (docs/contract.md §4), installed as a `before_request` hook on the server.

- `MONITOR_API_TOKEN` (or `_FILE`) set: writes to the API (`POST`/`PUT`/`PATCH`/`DELETE` under
  `/api/`) need `Authorization: Bearer <token>`; missing -> 401, wrong -> 403. Compared with
  `hmac.compare_digest`, so the time taken says nothing about the token.
- `MONITOR_BASIC_AUTH=user:password` (or `_FILE`) set: every other request (dashboard pages,
  Dash callbacks, API reads, `/metrics`) needs HTTP basic auth; a valid bearer token is also
  accepted on `/api/` and `/metrics`, for machines. `/healthz` is always open (load balancers,
  container health checks).
- Neither set: everything is open; that is why the default bind is 127.0.0.1.
- Dashboard actions (acknowledge, silence) follow `dashboard_actor()`: open when no
  credential is set; with basic auth, done as the authenticated user; with only a token, the
  dashboard is read-only (it cannot tell who is acting, and the token is not for browsers).
- Every response carries `SECURITY_HEADERS` and a Content-Security-Policy
  (`content_security_policy`): no framing, no inline or foreign scripts but the dashboard's
  own, hashed inline scripts (`allow_inline_scripts`), no referrer, no MIME sniffing.
- Request bodies above `MAX_CONTENT_LENGTH` (`$MONITOR_MAX_BODY_BYTES`, default 16 MiB) get a
  413 JSON error before being read.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from monitor.config import ConfigError
from monitor.secrets import secret

DEFAULT_MAX_BODY = 16 * 1024 * 1024
OPEN_PATHS = ("/healthz",)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",  # data-derived strings must never be sniffed into HTML
    "Referrer-Policy": "no-referrer",  # dashboard URLs carry model and segment names
}
# Plotly and Dash's components set styles at run time (<style> rules, style attributes), so
# styles need 'unsafe-inline'; scripts do not: only our origin and hashed inline scripts.
CSP_DIRECTIVES = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data: blob:",  # plotly's modebar icons and PNG downloads
    "font-src": "'self' data:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
READ_ONLY_REASON = ("The dashboard is read-only: MONITOR_API_TOKEN is set without MONITOR_BASIC_AUTH, "
                    "so it cannot tell who acknowledges or silences an alert. Set "
                    "MONITOR_BASIC_AUTH=user:password to act on alerts here.")
NOT_AUTHENTICATED = "Sign in (HTTP basic auth) to act on alerts."


@dataclass(frozen=True)
class Credentials:
    token: bytes | None
    basic_user: bytes | None
    basic_password: bytes | None

    @property
    def basic_enabled(self) -> bool:
        return self.basic_user is not None


@dataclass
class SecurityState:
    """What `install` put on a server (`server.extensions["monitor_security"]`)."""

    credentials: Credentials
    script_hashes: Callable[[], list[str]] = field(default=list)

    @property
    def csp(self) -> str:
        return content_security_policy(self.script_hashes())


@dataclass(frozen=True)
class Actor:
    """Who may act through the dashboard in this request, and under which name.

    `name` is the authenticated user when basic auth is on; None means "open: take the name
    the user typed" (no credential configured). `reason` says why `allowed` is False."""

    allowed: bool
    name: str | None = None
    reason: str | None = None


def content_security_policy(script_hashes: list[str] | tuple[str, ...] = ()) -> str:
    directives = dict(CSP_DIRECTIVES)
    directives["script-src"] = " ".join([directives["script-src"], *script_hashes])
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def allow_inline_scripts(server: Flask, hashes: Callable[[], list[str]]) -> None:
    """Let the CSP allow the inline scripts whose hash sources `hashes()` gives (Dash's
    `app.csp_hashes`). Asked per response: Dash adds the clientside callbacks of its page
    router only when it takes its first request (hashing them costs microseconds)."""
    state: SecurityState = server.extensions["monitor_security"]
    state.script_hashes = hashes


def dashboard_actor() -> Actor:
    """Whether the current request may acknowledge or silence alerts, and as whom.

    Checked by the dashboard's callbacks themselves, not only by the page that shows the
    buttons: a forged POST to /_dash-update-component must change nothing either.
    """
    state: SecurityState | None = current_app.extensions.get("monitor_security")
    credentials = state.credentials if state is not None else load_credentials()
    if credentials.basic_enabled:
        if not _basic_ok(credentials):
            return Actor(False, reason=NOT_AUTHENTICATED)
        return Actor(True, name=(credentials.basic_user or b"").decode("utf-8", "replace"))
    if credentials.token is not None:
        return Actor(False, reason=READ_ONLY_REASON)
    return Actor(True)


def load_credentials() -> Credentials:
    """Read the secrets once, at app start (a bad value fails the start, not a request)."""
    token = secret("MONITOR_API_TOKEN")
    basic = secret("MONITOR_BASIC_AUTH")
    user = password = None
    if basic is not None:
        user, _, password = basic.partition(":")
        if not user or not password:
            raise ConfigError("MONITOR_BASIC_AUTH must be user:password, both non-empty")
    return Credentials(
        token=token.encode() if token else None,
        basic_user=user.encode() if user is not None else None,
        basic_password=password.encode() if password is not None else None,
    )


def max_body_bytes() -> int:
    raw = os.environ.get("MONITOR_MAX_BODY_BYTES")
    if not raw:
        return DEFAULT_MAX_BODY
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"MONITOR_MAX_BODY_BYTES must be a number of bytes, got {raw!r}") from None
    if value <= 0:
        raise ConfigError("MONITOR_MAX_BODY_BYTES must be positive")
    return value


def json_error(status: int, message: str, **headers: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    for name, value in headers.items():
        response.headers[name.replace("_", "-")] = value
    return response


def _bearer() -> bytes | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip().encode()


def _basic() -> tuple[bytes, bytes] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    return (user, password) if sep else None


def _token_ok(credentials: Credentials) -> bool:
    given = _bearer()
    return given is not None and credentials.token is not None and hmac.compare_digest(given, credentials.token)


def _basic_ok(credentials: Credentials) -> bool:
    given = _basic()
    if given is None or credentials.basic_user is None or credentials.basic_password is None:
        return False
    # Both comparisons always run: no early exit that would time the user name.
    user_ok = hmac.compare_digest(given[0], credentials.basic_user)
    password_ok = hmac.compare_digest(given[1], credentials.basic_password)
    return user_ok and password_ok


def check_request(credentials: Credentials) -> Response | None:
    """None when the request may go on, else the refusal to send."""
    path = request.path
    if path in OPEN_PATHS:
        return None
    if request.content_length is not None and request.max_content_length is not None \
            and request.content_length > request.max_content_length:
        return json_error(413, f"request body larger than {request.max_content_length} bytes")
    is_api = path.startswith("/api/")
    if is_api and request.method in WRITE_METHODS and credentials.token is not None:
        if _bearer() is None:
            return json_error(401, "this write needs Authorization: Bearer <MONITOR_API_TOKEN>",
                              WWW_Authenticate='Bearer realm="classifier-monitor"')
        if not _token_ok(credentials):
            return json_error(403, "invalid API token")
        return None
    if not credentials.basic_enabled:
        return None
    if (is_api or path == "/metrics") and _token_ok(credentials):
        return None
    if _basic_ok(credentials):
        return None
    headers = {"WWW-Authenticate": 'Basic realm="classifier-monitor", charset="UTF-8"'}
    if is_api or path == "/metrics":
        return json_error(401, "authentication required", WWW_Authenticate=headers["WWW-Authenticate"])
    return Response("authentication required\n", 401, headers, mimetype="text/plain")


def install(server: Flask) -> None:
    """Install the body limit, the auth hook, the security headers and JSON errors for the
    API on `server` (the dashboard's Flask server: they cover every route)."""
    credentials = load_credentials()
    state = SecurityState(credentials)
    server.extensions["monitor_security"] = state
    server.config["MAX_CONTENT_LENGTH"] = max_body_bytes()

    @server.before_request
    def _monitor_security() -> Response | None:
        return check_request(credentials)

    @server.errorhandler(RequestEntityTooLarge)
    def _too_large(_error: HTTPException) -> Response:
        return json_error(413, f"request body larger than {server.config['MAX_CONTENT_LENGTH']} bytes")

    @server.errorhandler(404)
    @server.errorhandler(405)
    def _api_not_found(error: HTTPException) -> Response | HTTPException:
        # JSON for API clients; other paths keep the app's own pages (the dashboard's).
        if request.path.startswith("/api/"):
            return json_error(error.code or 404, error.name)
        return error

    @server.after_request
    def _headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
        response.headers["Content-Security-Policy"] = state.csp
        if request.path.startswith("/api/") or request.path in ("/metrics", "/healthz"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response
