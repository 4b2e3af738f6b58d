"""Error pages in the person's language, in the app's shell: not werkzeug's English ones.

An htmx request gets only the words instead; htmx does not swap an error answer, so
static/app.js shows them in the banner every page has (#request-error).
"""

from __future__ import annotations

import logging

from flask import Flask, Response, make_response, render_template, request
from flask.globals import request_ctx
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from domain.db import is_busy

log = logging.getLogger("propusk")

# Status → (heading, what to do). A 404 says the same for "not there" and "not yours".
MESSAGES = {
    400: (_l("Неверный запрос"), _l("Обновите страницу и попробуйте ещё раз.")),
    403: (_l("Нет доступа"), _l("У вас нет доступа к этой странице.")),
    404: (_l("Страница не найдена"),
          _l("Такой страницы нет или у вас нет к ней доступа. Проверьте адрес или начните "
             "с главной.")),
    405: (_l("Неверный запрос"), _l("Этот адрес так не открывают. Начните с главной.")),
    413: (_l("Слишком большой файл"), _l("Можно отправить не больше 2 МБ.")),
    429: (_l("Слишком много запросов"), _l("Подождите немного и попробуйте ещё раз.")),
    500: (_l("Что-то пошло не так"),
          _l("Ошибка на сервере. Попробуйте ещё раз через минуту.")),
}
# SQLite's lock held by another process longer than a request waits for it (domain/db.py).
BUSY = (_l("Сервер занят"),
        _l("Сервер сейчас занят другой работой. Подождите несколько секунд и отправьте "
           "ещё раз."))
BUSY_RETRY_AFTER_S = 5
# A form whose token no longer matches: a page left open across a sign-out, or a stale tab.
STALE = (_l("Страница устарела"),
         _l("Форма устарела или вы вышли из аккаунта в другой вкладке. Обновите страницу и "
            "отправьте её ещё раз."))


def _render(status: int, title, text, headers) -> Response:
    # The words alone, in a paragraph static/app.js looks for: all an htmx request needs,
    # and all that is left when the shell cannot render (the database is down, say).
    said = Markup('<p class="flash flash-error" data-request-error>{}</p>').format(text)
    bare = Markup("<!doctype html><meta charset=utf-8><h1>{}</h1>{}").format(title, said)
    if request.headers.get("HX-Request"):
        body = said
    elif request_ctx.url_adapter is None:
        # A request for a host this site does not serve (app.py, TRUSTED_HOSTS): the shell's
        # links cannot be built for it, and it is not worth a traceback in the log.
        body = bare
    else:
        try:
            body = render_template("core/error.html", title=title, text=text)
        except Exception:
            log.exception("error page for %s", status)
            body = bare
    response = make_response(body, status)
    for name, value in headers:
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def init_errors(app: Flask) -> None:
    """Answer 4xx and 5xx with our own pages (an unhandled exception arrives here as an
    InternalServerError, a kind of HTTPException)."""

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        status = error.code or 500
        if status < 400:  # routing's redirects (a missing trailing slash) pass through
            return error
        if isinstance(error, CSRFError):
            title, text = STALE
        elif status == 500 and is_busy(getattr(error, "original_exception", None)):
            # A wait rather than a fault: the write that met the lock was not made.
            headers = [*error.get_headers(), ("Retry-After", str(BUSY_RETRY_AFTER_S))]
            return _render(503, *BUSY, headers)
        else:
            title, text = MESSAGES.get(status, MESSAGES[400 if status < 500 else 500])
        return _render(status, title, text, error.get_headers())
