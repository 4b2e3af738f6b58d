"""A local append-only spool of gate events for when the database cannot take them.

Events are JSON lines in `path`. `drain(write_fn)` first renames the file to
`<path>.draining` (appends then go on to a fresh file), hands its events to `write_fn` in
order and records after each one how far it got in `<path>.offset` (written to a temporary
file and renamed, so it is never half-written). A crash or a failing `write_fn` leaves the
rest for the next drain, also after a restart.

Delivery is at least once: a crash between `write_fn` returning and the offset being saved
hands that one event over again. Every event carries a `spool_id` (a UUID) so the writer
can skip one it already has.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("propusk.gatebridge.spool")


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class Spool:
    """Append events while the database is away; drain them, in order, once it is back."""

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.draining_path = self.path.with_name(self.path.name + ".draining")
        self.offset_path = self.path.with_name(self.path.name + ".offset")
        self.fsync = fsync
        self.skipped = 0
        self._lock = threading.Lock()
        self._drain_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._end_torn_line(self.path)

    @staticmethod
    def _end_torn_line(path: Path) -> None:
        # A crash mid-append can leave a line without its newline; end it so the next event
        # starts on a line of its own (the torn one is skipped, with a warning, on drain).
        try:
            with path.open("rb+") as f:
                f.seek(0, os.SEEK_END)
                if f.tell() == 0:
                    return
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")
        except FileNotFoundError:
            return

    def append(self, event: dict[str, Any]) -> str:
        """Add one event at the end; returns its spool_id. Durable once it returns."""
        record = dict(event)
        record.setdefault("spool_id", uuid.uuid4().hex)
        line = json.dumps(record, ensure_ascii=False, default=_default, separators=(",", ":"))
        data = (line + "\n").encode("utf-8")
        with self._lock:
            # One write of a whole line per event, in append mode.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        return record["spool_id"]

    def pending(self) -> int:
        """How many events wait to be written."""
        with self._lock:
            count = 0
            if self.draining_path.exists():
                count += sum(1 for _ in self._read(self.draining_path, self._offset()))
            if self.path.exists():
                count += sum(1 for _ in self._read(self.path, 0))
            return count

    def __len__(self) -> int:
        return self.pending()

    def __bool__(self) -> bool:
        """Whether any event waits: a look at the files, not a count (asked per event)."""
        if self.draining_path.exists():
            return True
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def drain(self, write_fn: Callable[[dict[str, Any]], object], limit: int | None = None) -> int:
        """Hand spooled events to write_fn in order; returns how many were written.

        An exception from write_fn propagates; that event and the rest stay spooled.
        Only one drain runs at a time; a second concurrent call returns 0 at once.
        """
        if not self._drain_lock.acquire(blocking=False):
            return 0
        try:
            written = 0
            while limit is None or written < limit:
                if not self.draining_path.exists():
                    with self._lock:
                        if not self.path.exists() or self.path.stat().st_size == 0:
                            return written
                        # New appends go to a fresh file from here on.
                        os.replace(self.path, self.draining_path)
                        self._save_offset(0)
                done, finished = self._drain_file(
                    write_fn, None if limit is None else limit - written
                )
                written += done
                if not finished:
                    return written
                with self._lock:
                    self.draining_path.unlink(missing_ok=True)
                    self.offset_path.unlink(missing_ok=True)
            return written
        finally:
            self._drain_lock.release()

    def _drain_file(
        self, write_fn: Callable[[dict[str, Any]], object], limit: int | None
    ) -> tuple[int, bool]:
        written = 0
        for end, event in self._read(self.draining_path, self._offset()):
            if limit is not None and written >= limit:
                return written, False
            if event is not None:
                write_fn(event)  # an exception leaves this event for the next drain
                written += 1
            self._save_offset(end)
        return written, True

    def _read(self, path: Path, offset: int):
        """Yield (offset after the line, event or None for a torn line) from `offset` on."""
        with path.open("rb") as f:
            f.seek(offset)
            position = offset
            for raw in f:
                position += len(raw)
                if not raw.endswith(b"\n"):
                    return  # still being written, or torn: not ours to take yet
                text = raw.strip()
                if not text:
                    continue
                try:
                    event = json.loads(text)
                except ValueError:
                    self.skipped += 1
                    log.warning("spool %s: skipping an unreadable line before %s", path, position)
                    yield position, None
                    continue
                yield position, event

    def _offset(self) -> int:
        try:
            return int(self.offset_path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _save_offset(self, offset: int) -> None:
        tmp = self.offset_path.with_name(self.offset_path.name + ".tmp")
        with tmp.open("w") as f:
            f.write(str(offset))
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, self.offset_path)
