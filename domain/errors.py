"""Errors that domain operations raise and views turn into form errors."""

from __future__ import annotations


class DomainError(Exception):
    """A rule refused an operation; `field` names the form field it belongs to, if any."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return str(self.message)


class NotFound(DomainError):
    """The object does not exist or is outside what the person may see (answered as 404)."""
