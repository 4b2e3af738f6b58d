"""Headers every response carries: a strict CSP htmx works under; private pages uncached."""

from __future__ import annotations

from flask import Flask, Response, request
from flask_login import current_user

# No 'unsafe-inline' and no 'unsafe-eval': htmx runs with allowEval=false and
# includeIndicatorStyles=false (see base.html), our own JS lives in static files.
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "worker-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


def header_list(app: Flask) -> list[tuple[str, str]]:
    """The headers every response of `app` carries (HSTS only behind HTTPS)."""
    every = dict(HEADERS)
    if app.config.get("SESSION_COOKIE_SECURE"):
        every["Strict-Transport-Security"] = "max-age=31536000"
    return list(every.items())


def init_security(app: Flask) -> None:
    """Add the security headers and keep authenticated or partial responses out of caches."""

    # Each header added unless the view set its own: one pass over the response's headers
    # (setdefault would scan them once per header, on every response).
    ours = [(name.lower(), name, value) for name, value in header_list(app)]

    @app.after_request
    def _headers(response: Response) -> Response:
        present = {name.lower() for name in response.headers.keys()}
        response.headers.extend([(name, value) for low, name, value in ours
                                 if low not in present])
        private = current_user.is_authenticated or request.headers.get("HX-Request")
        if private:
            response.headers["Cache-Control"] = "no-store"
        return response
