"""The bridge wired to the database: gates from Gate rows, decisions from domain.access.

`BridgeService(app).run()` is the task `gatebridge.init_app` registers with the Bridge. It

* keeps the Poller's controllers in step with the enabled Gate rows: a territory's gates
  are reloaded at once when its version moves (domain.gates and the settings save bump it),
  and all of them every RELOAD_S as a safety net;
* decides events through a DecisionCache whose loader asks `domain.access.decide`, and
  forgets a territory's cached answers when its access version moves (domain.versions),
  also when the change was made by a web process of its own;
* lets exits out without the database where the territory's «Свободный выезд» is on (the
  setting travels with each gate's config, reloaded like the gates). Where it is off an
  exit is decided as domain.access decides it, cached like an entry. In a database outage
  such an exit gets its last known answer, else — a credential last let in may go out,
  as access.decide never refuses an exit it would grant an entry — the last known entry
  grant, else «try again» (6). Not a free exit: the manager turned that off on purpose,
  and the bridge is up, so the controller's offline policy (HR 201, free exit) is not in
  force; the exit button still opens, and the controller falls back to that policy by
  itself if the bridge goes away;
* writes every event as a GateEvent — or, while the database cannot take it, into a spool
  file in the instance folder, drained into the database when it answers again;
* stores each controller's state (GateStatus) for the console and the «Открыть» check;
* does both in one writer greenlet: on_event and on_state only hand their work over (see
  "The writer" below), so no controller's greenlet ever waits on the database;
* sends the «Открыть» commands the web leaves in GateCommand, never one older than 2 s.

Database work happens in short `db.connection_context()` blocks that never wait on the
network, so greenlets sharing one connection (an unpatched test process) never interleave
inside a block.

The writer: a hung database (PostgreSQL stopped with SIGSTOP: nothing refused, nothing
answered) once kept a controller's greenlet inside on_event for good, and the gate stopped
answering even exits. Now on_event queues the event and on_state keeps only the latest
state of each gate; one writer greenlet writes them. Events keep their order: once one is
in the spool every later one goes there too, until a drain empties it. A write the
database has not finished within WRITE_S counts as failed (the event is spooled), and
when QUEUE_MAX events wait — the writer stuck beyond that — the oldest go to the spool
from on_event itself, so memory stays bounded, nothing is lost and the order holds.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.lock
from flask import Flask
from gevent.pool import Group

from domain import access, versions
from domain.db import DB_ERRORS, db, utcnow
from domain.gates import (
    COMMAND_MAX_AGE,
    Gate,
    GateCommand,
    GateEvent,
    GateStatus,
    finish_command,
    save_status,
)
from domain.passes import normalize_plate
from domain.territories import Territory
from gatebridge import protocol as p
from gatebridge.cache import CacheKey, DecisionCache, cache_key
from gatebridge.poller import ControllerConfig, ControllerState, Poller, Reach, event_direction
from gatebridge.spool import Spool

log = logging.getLogger("propusk.gatebridge.service")

# Every change made through the app moves its territory's version, and watch() reloads
# that territory's gates at once; the whole reload is the safety net for the rest (a row
# written by hand). At 10 000 territories it reads some 13 000 gates (bench/README.md).
RELOAD_S = 30.0
RETRY_S = 3.0  # a step the database failed is tried again this soon, at the latest
# More territories moved at once than this, and one reload of all gates is cheaper than a
# query naming them all.
RELOAD_SOME_MAX = 500
WATCH_S = 0.2
COMMANDS_S = 0.1
DRAIN_S = 1.0
VERSION_OVERLAP = 5.0  # seconds a bump may wait for its transaction to commit
FULL_RESYNC = 30.0
# The writer: events that may wait for it, and how long one write may take (more than the
# database's own bounds, domain.db's PG_WAIT_S and BUSY_WAIT_S) before it counts as failed.
QUEUE_MAX = 1000
WRITE_S = 8.0
# Decisions remembered between decide() and on_event() of the same event.
MAX_REMEMBERED = 1000
KINDS = {
    p.EventType.CARD: "card",
    p.EventType.PLATE: "plate",
    p.EventType.PIN: "pin",
    p.EventType.EXIT_BUTTON: "button",
    p.EventType.REMOTE: "remote",
}
# Why an event with no credential is refused, by its type; any other type is unknown.
NOTHING_TO_CHECK = {
    p.EventType.PLATE: "plate_unreadable",  # the camera saw a car, read no plate
    p.EventType.REMOTE: "remote_unsupported",
}


def config_of(gate: Any, free_exit: bool) -> ControllerConfig:
    """The poller's view of a gate's row (a Gate, or GATE_COLUMNS' named tuple), with its
    territory's «Свободный выезд»."""
    return ControllerConfig(
        gate_id=gate.id,
        territory_id=gate.territory_id,
        host=gate.host,
        port=gate.port,
        unit=gate.unit_id,
        poll_ms=gate.poll_ms,
        word_order=gate.word_order,
        direction=gate.direction,
        free_exit=free_exit,
        serial=gate.serial,
    )


# What a reload reads of each gate: named tuples, not model objects, which took three
# quarters of a reload's time at 10 000 territories.
GATE_COLUMNS = (Gate.id, Gate.territory.alias("territory_id"), Gate.host, Gate.port,
                Gate.unit_id, Gate.poll_ms, Gate.word_order, Gate.direction, Gate.enabled,
                Gate.serial, Territory.free_exit)


def reached_json(config: ControllerConfig, reach: Reach) -> str:
    """The controller identity a gate reached and when, with the configuration it was
    reached under (`ControllerConfig.device`)."""
    return json.dumps({"device": list(config.device), "identity": list(reach.identity),
                       "since": reach.since})


def reached_identity(config: ControllerConfig, stored: str | None) -> Reach | None:
    """What reached_json stored, if it was reached under the gate's current address and
    serial (a gate pointed elsewhere since has not reached anything yet). One stored without
    the moment it was reached (stop 21) is not taken: it may record a controller taken over
    by the ranking of then, and ranking it by when the address was written would make that
    for good; the gate reaches its controller again instead."""
    if stored is None:
        return None  # most gates: nothing stored
    try:
        found = json.loads(stored)
        if found is None or found["device"] != list(config.device):
            return None
        address, port, serial = found["identity"]
        since = float(found["since"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return Reach((address, port, tuple(serial) if isinstance(serial, list) else serial), since)


def access_credential(credential: p.Credential) -> access.Credential:
    """What the controller read, in the form domain.access looks it up by."""
    if credential.kind == "plate":
        return access.Credential("plate", normalize_plate(credential.value))
    if credential.kind == "card":
        return access.Credential("card", str(int(credential.value)))
    return access.Credential(credential.kind, credential.value)


def monotonic_deadline(moment: dt.datetime | None) -> float | None:
    """An aware UTC moment as a time.monotonic() deadline (None stays None)."""
    if moment is None:
        return None
    return time.monotonic() + (moment - utcnow()).total_seconds()


class WriterTimeout(OSError):
    """A write the database did not finish in time (an OSError, so one of DB_ERRORS)."""


class BridgeService:
    """The bridge's database side; one per bridge process."""

    def __init__(
        self,
        app: Flask,
        *,
        reload_s: float = RELOAD_S,
        watch_s: float = WATCH_S,
        commands_s: float = COMMANDS_S,
        drain_s: float = DRAIN_S,
        queue_max: int = QUEUE_MAX,
        write_s: float = WRITE_S,
        poller_options: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.reload_s = reload_s
        self.watch_s = watch_s
        self.commands_s = commands_s
        self.drain_s = drain_s
        self.queue_max = queue_max
        self.write_s = write_s
        self.cache = DecisionCache(self._load)
        self.spool = Spool(Path(app.instance_path) / "gate-events.spool")
        options = {"networks": app.config.get("GATE_NETWORKS", ()), **(poller_options or {})}
        self.poller = Poller([], self.decide, self.on_event, self.on_state, **options)
        self.group = Group()
        self._versions: dict[int, int] | None = None
        self._full_at = 0.0
        self._read_at = utcnow()  # when the last read that went through began (with _versions)
        self._decisions: OrderedDict[tuple[int, int], access.Decision] = OrderedDict()
        self.invalidations = 0
        # The writer's work: events in order, the latest state of each gate.
        self._events: deque[dict[str, Any]] = deque()
        self._states: dict[int, tuple[ControllerConfig, ControllerState]] = {}
        self._work = gevent.event.Event()
        self._retry_at = 0.0  # after a failure, the database is tried again from then on
        # One reload at a time: the periodic one and the version watch's both reload, and on
        # PostgreSQL their queries yield to each other, so the older read could be applied
        # last and bring an old port or «Свободный выезд» back for seconds (review, stop 23).
        self._reloading = gevent.lock.Semaphore()

    # -- lifecycle ------------------------------------------------------------------

    def run(self) -> None:
        """Run until killed: the poller and the database loops."""
        self.poller.start()
        try:
            for interval, step in (
                (self.reload_s, self.reload),
                (self.watch_s, self.watch),
                (self.commands_s, self.pick_commands),
            ):
                greenlet = self.group.spawn(self._every, interval, step)
                greenlet.link_exception(self._crashed)
            self.group.spawn(self.writer).link_exception(self._crashed)
            self.group.join()
        finally:
            self.group.kill(timeout=5)
            self.poller.stop()
            self._spool_waiting()

    def _crashed(self, greenlet: gevent.Greenlet) -> None:
        log.error("gatebridge service loop crashed", exc_info=greenlet.exc_info)

    def _every(
        self, interval: float, step: Callable[[], None], wake: gevent.event.Event | None = None
    ) -> None:
        with self.app.app_context():
            while True:
                pause = interval
                try:
                    step()
                except DB_ERRORS as exc:
                    log.debug("%s: database unavailable: %s", step.__name__, exc)
                    # A bridge started while the database was away must not wait a whole
                    # RELOAD_S for its gates.
                    pause = min(interval, RETRY_S)
                except Exception:
                    log.exception("%s failed", step.__name__)
                if wake is None:
                    gevent.sleep(pause)
                else:
                    wake.wait(pause)  # set as soon as there is work

    # -- gates ------------------------------------------------------------------------

    def reload(self, territories: set[int] | None = None) -> None:
        """Poll exactly the enabled gates; the switched-off ones keep their controllers.
        Given `territories`, only theirs are read and changed; the others go on untouched."""
        with self._reloading:
            self._reload(territories)

    def _reload(self, territories: set[int] | None) -> None:
        gates = Gate.select(*GATE_COLUMNS).join(Territory)
        stored = GateStatus.select(GateStatus.gate, GateStatus.reached).where(
            GateStatus.reached.is_null(False))
        if territories is not None:
            gates = gates.where(Gate.territory.in_(sorted(territories)))
            stored = stored.join(Gate).where(Gate.territory.in_(sorted(territories)))
        with db.connection_context():
            rows = list(gates.namedtuples())
            reached = dict(stored.tuples())
        configs, held, known = [], [], {}
        for gate in rows:
            try:
                config = config_of(gate, gate.free_exit)
            except ValueError as exc:
                if gate.enabled:
                    log.warning("gate %s is misconfigured: %s", gate.id, exc)
                continue
            (configs if gate.enabled else held).append(config)
            reach = reached_identity(config, reached.get(gate.id))
            if reach is not None:
                known[gate.id] = reach
        self.poller.update(configs, held, known, territories=territories)

    def on_state(self, config: ControllerConfig, state: ControllerState) -> None:
        """Hand the controller's state to the writer; only a gate's latest one is stored."""
        self._states[config.gate_id] = (config, state)
        self._work.set()

    def store_state(self, config: ControllerConfig, state: ControllerState) -> None:
        """Store the controller's state where every web process can read it."""
        with db.connection_context():
            save_status(
                config.gate_id,
                status=state.status,
                last_seen_at=state.last_seen,
                heartbeat=state.heartbeat,
                gate_state=int(state.gate_state),
                fault_code=state.fault_code,
                error_kind=state.error_kind,
                last_error=state.last_error,
                reached=self._reached(config),
            )

    def _reached(self, config: ControllerConfig) -> str | None:
        """What to store of the identity the gate reached: only one reached under this
        config's address and serial (None leaves the stored one as it is)."""
        reach = self.poller.reached.get(config.gate_id)
        current = self.poller.configs.get(config.gate_id)
        if reach is None or current is None or current.device != config.device:
            return None
        return reached_json(config, reach)

    # -- decisions --------------------------------------------------------------------

    def _load(self, key: CacheKey) -> tuple[access.Decision, float | None]:
        territory_id, kind, value, direction = key
        with db.connection_context():
            decision = access.decide(
                territory_id, access.Credential(kind, value), direction, utcnow()
            )
        return decision, monotonic_deadline(decision.valid_until)

    def decide(self, config: ControllerConfig, snapshot: p.Snapshot) -> int:
        """The code for an event the poller does not let through by itself: from the cache,
        else domain.access; in an outage what the module's docstring says."""
        credential = snapshot.credential
        if credential is None:
            # Nothing to check: say which nothing (it was all «Карта не найдена»).
            decision = access.Decision(access.DENY_UNKNOWN, NOTHING_TO_CHECK.get(
                snapshot.event_type, "unknown_event"))
        else:
            wanted = access_credential(credential)
            key = cache_key(config.territory_id, p.Credential(wanted.kind, wanted.value),
                            event_direction(config, snapshot))
            try:
                decision = self.cache.get(key)
            except DB_ERRORS as exc:
                decision = self._outage_answer(key)
                log.warning("gate %s: database unavailable, answering %s: %s",
                            config.gate_id, decision.code, exc)
        self._remember(config.gate_id, snapshot.event_seq, decision)
        return decision.code

    def _outage_answer(self, key: CacheKey) -> access.Decision:
        territory_id, kind, value, direction = key
        if direction == access.EXIT:
            # The database has just failed: only what the cache kept, no second try.
            entry = self.cache.fallback((territory_id, kind, value, access.ENTRY))
            if entry is not None and entry.granted:
                return entry
        return access.Decision(access.TRY_AGAIN, "unavailable")

    def _remember(self, gate_id: int, seq: int, decision: access.Decision) -> None:
        self._decisions[(gate_id, seq)] = decision
        while len(self._decisions) > MAX_REMEMBERED:
            self._decisions.popitem(last=False)

    def watch(self) -> None:
        """Forget the cached answers of every territory whose access version moved, and
        reload the gates then.

        Each call reads only the versions changed since the last read that went through,
        less VERSION_OVERLAP seconds — a change is stamped inside its transaction and may
        commit a little later, hence the overlap — and every FULL_RESYNC seconds the whole
        table, as a safety net. (Counted from now instead, a bridge that lost the database
        for longer than the overlap missed what changed meanwhile until the next full read:
        a revoked plate was let in up to 30 s after the database came back, bridge audit,
        stop 24.)

        The gates and «Свободный выезд» travel in the gates' configs. Read only by the
        periodic reload, a manager switching free exit off saw exits let out for seconds,
        and «Открыть» went to a gate's old address after its port was edited. Their saves
        bump the version in the same transaction, so the moved territories' gates are
        reloaded here: only theirs, as every pass filed moves a version too, and reading
        all gates took ~0.8 s of the bridge's loop at 10 000 territories.
        """
        now, started = time.monotonic(), utcnow()
        full = self._versions is None or now - self._full_at >= FULL_RESYNC
        since = None if full else self._read_at - dt.timedelta(seconds=VERSION_OVERLAP)
        with db.connection_context():
            current = versions.versions(since)
        if self._versions is not None:
            moved = set()
            for territory_id, version in current.items():
                if self._versions.get(territory_id) != version:
                    moved.add(territory_id)
                    self.cache.invalidate(territory_id)
                    self.invalidations += 1
                    # The outage fallback is read again too (a revocation must reach it).
                    self.cache.refresh(territory_id)
            if moved:
                # Before the versions are noted: should it fail, the next call tries again.
                self.reload(moved if len(moved) <= RELOAD_SOME_MAX else None)
            self._versions.update(current)
        else:
            self._versions = current
        if full:
            self._full_at = now
        self._read_at = started

    # -- events -----------------------------------------------------------------------

    def on_event(
        self, config: ControllerConfig, snapshot: p.Snapshot, code: p.DecisionCode, latency: float
    ) -> None:
        """Hand the event to the writer, which records it or spools it."""
        decision = self._decisions.pop((config.gate_id, snapshot.event_seq), None)
        direction = int(event_direction(config, snapshot))
        if decision is not None:
            reason, account_id = decision.reason, decision.account_id
            if code == p.DecisionCode.TRY_AGAIN and decision.code != code:
                reason = "gate_offline"  # decided, but the link dropped before it got there
        elif snapshot.event_type == p.EventType.EXIT_BUTTON:
            reason, account_id = "exit_button", None
        elif code == p.DecisionCode.GRANT and direction == access.EXIT:
            reason, account_id = "exit_free", None
        else:
            reason, account_id = "unavailable", None
        credential = snapshot.credential
        value = access_credential(credential).value if credential is not None else ""
        if credential is not None and credential.kind == "pin":
            value = ""  # a PIN is a secret: the log says one was typed, not which
        event = {
            "territory_id": config.territory_id,
            "gate_id": config.gate_id,
            "at": utcnow().isoformat(),
            "kind": KINDS.get(snapshot.event_type, "other"),
            "credential": value,
            "direction": direction,
            "code": int(code),
            "reason": reason,
            "account_id": account_id,
        }
        while len(self._events) >= self.queue_max:
            # The writer is stuck: the oldest waiting event goes to the spool, ahead of the
            # rest, which the writer then spools after it (the spool is no longer empty).
            self.spool.append(self._events.popleft())
            log.warning("gate %s: the event writer is behind, events spooled", config.gate_id)
        self._events.append(event)
        self._work.set()

    # -- the writer -------------------------------------------------------------------

    def writer(self) -> None:
        """The writer greenlet: a round whenever work is handed over, else every drain_s."""
        self._every(self.drain_s, self.write_pending, self._work)

    def write_pending(self) -> None:
        """The writer's round: the spool, then the waiting events, then the latest states."""
        self._work.clear()
        if self.spool and self._database_due():
            try:
                self.drain()
            except DB_ERRORS as exc:
                self._retry_at = time.monotonic() + self.drain_s
                log.debug("spooled events not written yet: %s", exc)
        while self._events:
            # Left at the head while it is written: should the queue overflow meanwhile,
            # on_event spools it first, ahead of the later ones (the order holds), and it
            # is no longer the writer's. Not written (the spool holds earlier ones, the
            # database failed, the bridge is stopping): spooled, after those.
            event, written = self._events[0], False
            try:
                written = self._write_live(event)
            finally:
                if self._events and self._events[0] is event:
                    self._events.popleft()
                    if not written:
                        self.spool.append(event)
        self._store_states()

    def _spool_waiting(self) -> None:
        """Spool the events the writer has not taken (the bridge is stopping)."""
        while self._events:
            self.spool.append(self._events.popleft())

    def _write_live(self, event: dict[str, Any]) -> bool:
        """Write the event unless earlier ones wait in the spool; False when not written."""
        if self.spool:
            return False
        try:
            self._bounded(self._write_event_now, event)
        except DB_ERRORS as exc:
            log.warning("gate %s: event spooled, database unavailable: %s",
                        event["gate_id"], exc)
            return False
        return True

    def _write_event_now(self, event: dict[str, Any]) -> None:
        with db.connection_context():
            self.write_event(event)

    def _store_states(self) -> None:
        if not self._database_due():
            return  # the states wait; each is replaced by its gate's next one meanwhile
        states, self._states = self._states, {}
        for gate_id, (config, state) in states.items():
            try:
                self._bounded(self.store_state, config, state)
            except DB_ERRORS as exc:
                log.debug("gate %s: state not stored: %s", gate_id, exc)
                for later_id, item in states.items():
                    self._states.setdefault(later_id, item)  # unless a newer one came
                return

    def _bounded(self, work: Callable[..., None], *args: Any) -> None:
        """work(*args), failing (WriterTimeout) after write_s; a failure postpones the
        next try of the database by drain_s, so an outage costs one wait a round."""
        try:
            with gevent.Timeout(self.write_s, WriterTimeout(f"no answer in {self.write_s} s")):
                work(*args)
        except (*DB_ERRORS, WriterTimeout):
            self._retry_at = time.monotonic() + self.drain_s
            raise

    def _database_due(self) -> bool:
        return time.monotonic() >= self._retry_at

    @staticmethod
    def write_event(event: dict[str, Any]) -> None:
        """Write one event (live or from the spool) unless it is already there."""
        at = dt.datetime.fromisoformat(event["at"])
        with db.atomic():
            territory = Territory.get_or_none(Territory.id == event["territory_id"])
            if territory is None:
                return  # the territory is gone, and its events with it
            gate_id = event.get("gate_id")
            if gate_id is not None and Gate.get_or_none(Gate.id == gate_id) is None:
                gate_id = None
            account_id = event.get("account_id")
            if account_id is not None:
                from domain.accounts import Account

                if Account.get_or_none(Account.id == account_id) is None:
                    account_id = None
            if "spool_id" in event and GateEvent.select().where(
                (GateEvent.territory == territory.id)
                & (GateEvent.at == at)
                & (GateEvent.credential == event["credential"])
                & (GateEvent.code == event["code"])
            ).exists():
                return  # delivered before a crash kept the spool from noting it
            GateEvent.create(
                territory=territory.id,
                gate=gate_id,
                at=at,
                kind=event["kind"],
                credential=event["credential"],
                direction=event["direction"],
                code=event["code"],
                reason=event["reason"],
                account=account_id,
                source="bridge",
            )

    def drain(self) -> None:
        """Write spooled events once the database answers again (the writer calls it)."""
        if not self.spool:
            return
        with db.connection_context():
            written = self.spool.drain(lambda event: self._bounded(self.write_event, event))
        if written:
            log.info("wrote %s spooled gate events", written)

    # -- commands ---------------------------------------------------------------------

    def pick_commands(self) -> None:
        """Claim pending «Открыть» commands and send each in its own greenlet."""
        claimed: list[GateCommand] = []
        with db.connection_context():
            now = utcnow()
            pending = list(
                GateCommand.select().where(GateCommand.status == "pending").order_by(GateCommand.id)
            )
            for command in pending:
                if now - command.created_at > COMMAND_MAX_AGE:
                    finish_command(command.id, False, "not picked up in time", failure="stale")
                    continue
                took = (
                    GateCommand.update(status="sending")
                    .where((GateCommand.id == command.id) & (GateCommand.status == "pending"))
                    .execute()
                )
                if took:
                    claimed.append(command)
        for command in claimed:
            self.group.spawn(self._send, command)

    def _send(self, command: GateCommand) -> None:
        reason = p.CommandReason.PHONE if command.reason == "phone" else p.CommandReason.OPERATOR
        result = self.poller.command(command.gate_id, p.Command.OPEN, reason)
        if not result.ok:
            log.info("command %s to gate %s failed: %s: %s", command.id, command.gate_id,
                     result.reason, result.message)
        for attempt in range(50):
            try:
                with self.app.app_context(), db.connection_context():
                    finish_command(command.id, result.ok, result.message, failure=result.reason)
                return
            except DB_ERRORS:
                gevent.sleep(min(0.1 * (attempt + 1), 1.0))
        log.error("command %s: result %s could not be stored", command.id, result)



