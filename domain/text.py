"""Small rules of Russian typography for the messages that quote what people named."""

from __future__ import annotations


def in_quotes(name: str) -> str:
    """A name to be put inside a message's «»: its own «» become „“, as Russian typography
    nests quotes («ЖК „Северный парк“»), instead of «ЖК «Северный парк»»."""
    return (name or "").replace("«", "„").replace("»", "“")
