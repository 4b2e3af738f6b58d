"""Small rules for what people named: quoting it in a message, telling two names apart."""

from __future__ import annotations

import re


def in_quotes(name: str) -> str:
    """A name to be put inside a message's «»: its own «» become „“, as Russian typography
    nests quotes («ЖК „Северный парк“»), instead of «ЖК «Северный парк»»."""
    return (name or "").replace("«", "„").replace("»", "“")


def name_key(name: str) -> str:
    """A name as two names of one kind are compared (units, gates): «Дом  99» and «дом 99»
    are one. In Python: SQLite's lower() knows only ASCII letters, not Cyrillic ones."""
    return " ".join((name or "").split()).casefold()


_NUMBERS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """A name as people sort a list of them: «Участок 2» before «Участок 10», «Дом 2» before
    «Дом 130», case and «ё» aside. Text and numbers alternate in the key, so any two compare."""
    text = name_key(name).replace("ё", "е")
    return tuple(int(run) if i % 2 else run for i, run in enumerate(_NUMBERS.split(text)))
