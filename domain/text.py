"""Small rules for what people named: quoting it in a message, telling two names apart."""

from __future__ import annotations


def in_quotes(name: str) -> str:
    """A name to be put inside a message's «»: its own «» become „“, as Russian typography
    nests quotes («ЖК „Северный парк“»), instead of «ЖК «Северный парк»»."""
    return (name or "").replace("«", "„").replace("»", "“")


def name_key(name: str) -> str:
    """A name as two names of one kind are compared (units, gates): «Дом  99» and «дом 99»
    are one. In Python: SQLite's lower() knows only ASCII letters, not Cyrillic ones."""
    return " ".join((name or "").split()).casefold()
