"""The outbox: every call, SMS and e-mail appended as one JSON line to a file (SPEC §10)."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

CHANNELS = frozenset({"call", "sms", "email"})

# Reading backwards in blocks keeps `entries()` cheap on an outbox that has grown for months.
_BLOCK = 64 * 1024


class Outbox:
    """An append-only JSON-lines file that several processes may write at once."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Outbox({str(self.path)!r})"

    def append(
        self,
        channel: str,
        to: str,
        *,
        text: str,
        code: str | None = None,
        link: str | None = None,
    ) -> dict[str, Any]:
        """Append one message and return the entry exactly as written."""
        if channel not in CHANNELS:
            raise ValueError(
                f"unknown outbox channel {channel!r}; expected one of {sorted(CHANNELS)}"
            )
        entry: dict[str, Any] = {"channel": channel, "to": to}
        if code is not None:
            entry["code"] = code
        if link is not None:
            entry["link"] = link
        entry["text"] = text
        entry["at"] = datetime.now(UTC).isoformat(timespec="milliseconds")
        # json.dumps escapes newlines inside strings, so one entry is always one line.
        data = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")

        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Read-write so the last byte can be checked; O_APPEND still puts every write at the end.
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            # O_APPEND alone is not enough: a long line may be written in several
            # chunks, and another process's chunk must not land in between.
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _ends_torn(fd):
                # A writer died mid-line; start ours on a fresh line so only theirs is lost.
                data = b"\n" + data
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)  # closing releases the lock
        return entry

    def entries(self, limit: int = 200) -> list[dict[str, Any]]:
        """Return up to `limit` entries, newest first, skipping lines that are not valid JSON."""
        return self._scan(limit, lambda entry: True)

    def latest(self, to: str | None = None, channel: str | None = None) -> dict[str, Any] | None:
        """Return the newest entry sent to `to` on `channel` (either may be None for any)."""

        def matches(entry: dict[str, Any]) -> bool:
            return (to is None or entry.get("to") == to) and (
                channel is None or entry.get("channel") == channel
            )

        found = self._scan(1, matches)
        return found[0] if found else None

    def _scan(self, limit: int, keep: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        if limit <= 0:
            return found
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return found
        with f:
            # A shared lock so we never read a line that a writer has half written.
            fcntl.flock(f.fileno(), fcntl.LOCK_SH)
            for raw in _lines_backwards(f):
                entry = _parse(raw)
                if entry is not None and keep(entry):
                    found.append(entry)
                    if len(found) >= limit:
                        break
        return found


def _ends_torn(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(raw)
    except ValueError:  # also covers UnicodeDecodeError
        return None
    return entry if isinstance(entry, dict) else None


def _lines_backwards(f: BinaryIO) -> Iterator[bytes]:
    """Yield the file's non-empty lines from the last to the first."""
    position = f.seek(0, os.SEEK_END)
    tail = b""
    while position > 0:
        step = min(_BLOCK, position)
        position -= step
        f.seek(position)
        chunk = f.read(step) + tail
        lines = chunk.split(b"\n")
        # The first piece may be the end of a line that starts in an earlier block.
        tail = lines.pop(0)
        for line in reversed(lines):
            if line.strip():
                yield line
    if tail.strip():
        yield tail
