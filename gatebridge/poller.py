"""Poll GATE-CTL v1 controllers, answer their events and send them commands.

One greenlet per controller (one controller per TCP connection). Every `poll_ms` it makes
one FC04 read of IR 16-47; a new `event_seq` is decided and answered with one FC16 write of
HR 100-103 straight away. Commands («Открыть») wake the controller's greenlet so they go
out ahead of the next poll, and fail at once when the controller is offline.

The database stays outside: `decide`, `on_event` and `on_state` are injected, so the
poller can be tested against a real controller with plain functions.

Choices worth knowing:

* After a dropped link, the first poll on the new connection answers the event found
  there (GATE_PROTOCOL rule 2): a card shown while the bridge was reconnecting is answered
  — unless the controller says (`event_age`, IR 39) it was captured EVENT_MAX_AGE_S or
  more ago. Someone who has waited that long has usually walked off or presented again,
  and opening for nobody lets the next person in; the controller's own offline policy
  (HR 201) covers such gaps.
* The first poll of every connection — the very first one too (bridge started, gate added
  or reconfigured) — answers the event found there when the controller has not applied a
  decision for it (`applied_decision_seq`, IR 40) and it is younger than EVENT_MAX_AGE_S:
  a card shown while the bridge restarted is answered like one shown during a dropped link.
  An event this bridge handled on an earlier connection is not answered again while the
  controller ran on since (`_ran_on`: its heartbeat counted the seconds the bridge
  counted); one that restarted meanwhile starts its event_seq at 1 again, and a car shown
  right after a quick reboot, under a seq answered before it, waited for nothing when the
  rule was «heartbeat lower than before» (shift audit: the heartbeat may already be past
  the old one). An event the controller applied a decision to is never answered twice.
  Nor is an exit its offline policy let out while the bridge was away longer than the
  watchdog (`_let_out_on_its_own`): a second pulse lets whoever follows through. A
  decision that reached the controller although its reply was lost (the echo says so) is
  recorded, not re-sent.
* A connection that fails before its first good poll (the controller accepts and closes,
  answers garbage or nothing) counts as a failed connect: the same growing pauses follow
  (GATE_PROTOCOL rule 5), not a tight reconnect loop.
* One controller serves one gate. Each connection reads IR 0-3 once (map version, type,
  serial) and claims the controller's identity: the address it actually reached (the
  peer's IP, IPv4-mapped and loopback spellings folded) with its port and serial. Two
  gates whose addresses are written differently but reach the same device (`localhost`
  and `127.0.0.1`, a second DNS name, a unit id the device ignores) cannot both be served:
  the gate that reached the device first (`Poller.claim`) keeps it and the other shows
  «controller_taken» and acts on nothing. Without this, a manager of one territory could
  open another's barrier by spelling its address differently, or by re-pointing a DNS name
  their gate names. A controller with a map version other than 1 is refused as unsupported.
* A gate's host name is resolved once per connection attempt (within RESOLVE_S), and the
  connection goes to an address that was resolved, never to the name again. With
  GATE_NETWORKS set, a name that does not resolve, or resolves to any address outside the
  networks, gets no connection at all.
* Each connection, once its controller is claimed, sets the controller's own watchdog (HR
  200-201: WATCHDOG_S, offline policy 0), so that with the bridge away the controller lets
  people out by itself (SPEC: exit stays free). Gates switched off are not polled, but the
  controller they reached stays claimed for them (`Poller.update`'s `held`), across a
  restart too (its `known`, stored by the service).
* A gate configured as `entry` treats every event as an entry (except the exit button);
  only `both` trusts the direction the controller reports. A misconfigured controller
  then costs a refusal, never a free pass.
* Exits are granted without asking `decide` (GATE_PROTOCOL rule 3) only while the gate's
  territory lets cars out freely (`free_exit`, the manager's «Свободный выезд»); with it
  off an exit is decided like an entry. The exit button always opens: it is the way out
  the controller itself offers, and GATE_PROTOCOL grants it unconditionally.
* pymodbus is used with `retries=0`: the poller decides itself when to reconnect, and a
  timed-out request always closes the connection so a late answer cannot be mistaken for
  the next one.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

import gevent
import gevent.event
import gevent.socket
from gevent.pool import Group
from gevent.resolver.ares import Resolver
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException

from domain.networks import Network, outside_networks
from gatebridge import protocol as p

log = logging.getLogger("propusk.gatebridge.poller")

GateDirection = Literal["entry", "exit", "both"]
Status = Literal["offline", "online", "fault"]

OFFLINE_AFTER_S = 3.0
# How long the gate's host name may take to resolve before the attempt counts as failed
# (`Poller.resolve`).
RESOLVE_S = 3.0
STUCK_AFTER_S = 5.0
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
# A decision must reach the controller within 50 ms of the read; leave room for the write.
DECIDE_TIMEOUT_S = 0.04
COMMAND_CONFIRM_S = 1.0
# GATE_PROTOCOL gives an event's age (IR 39, whole seconds) but no limit; this is ours. An
# event found after a reconnect is answered only when captured less than this long ago.
EVENT_MAX_AGE_S = 5
# How long a refused decision stays on the gate's state although later polls succeed.
REFUSAL_SHOWN_S = 60.0
# How often on_state hears about a controller whose status has not changed.
STATE_EVERY_S = 1.0
CRASH_RESTART_S = 1.0
# The controller's own watchdog (HR 200), set on every connection with offline policy 0
# (HR 201: entries refused, exits free): with the bridge gone (stopped, restarting, crashed)
# for this long, a controller lets people out by itself. A few polls' worth: a bridge alive
# but slow never trips it; one restarting does (about four seconds) only for a moment.
WATCHDOG_S = 10
# How far the controller's heartbeat (whole seconds, read at both ends) may be from the
# bridge's own count of the seconds between two polls before it counts as restarted. A
# restart shifts it by the heartbeat it had plus the time it was down, so only a controller
# that restarts within this long of its previous boot passes for one that ran on.
RESTART_SLACK_S = 2.0


@dataclass(frozen=True)
class ControllerConfig:
    """How to reach one controller and how to read it (a Gate row, seen by the bridge)."""

    gate_id: int
    territory_id: int
    host: str
    port: int = 502
    unit: int = 1
    poll_ms: int = 200
    word_order: p.WordOrder = "big"
    direction: GateDirection = "both"
    timeout: float = 0.5
    # The territory's «Свободный выезд»: exits open without asking `decide`.
    free_exit: bool = True
    # The serial printed on the controller, as the manager gave it (Gate.serial): the gate
    # serves that controller only, and before any gate without one (Poller.claim).
    serial: int | None = None

    @property
    def device(self) -> tuple:
        """What names the controller: two configurations of a gate with the same one name
        the same controller (address, port, unit, and the serial it was given, if any)."""
        return (self.host, self.port, self.unit, self.serial)

    def __post_init__(self) -> None:
        if self.word_order not in ("big", "little"):
            raise ValueError(f"word_order must be big or little, not {self.word_order!r}")
        if self.direction not in ("entry", "exit", "both"):
            raise ValueError(f"direction must be entry, exit or both, not {self.direction!r}")
        if self.poll_ms < 0 or self.timeout <= 0:
            raise ValueError("poll_ms must be >= 0 and timeout > 0")


# What can be wrong with a controller (ControllerState.error_kind): stable keys the console
# puts in the reader's words (domain.gates.CONTROLLER_ERRORS); last_error keeps the detail.
ErrorKind = Literal["unreachable", "no_answer", "device_error", "decision_refused", "stuck",
                    "gate_fault", "controller_taken", "unsupported", "address_not_allowed",
                    "wrong_serial"]


@dataclass(frozen=True)
class ControllerState:
    """What the console shows about a controller: reported through on_state and states()."""

    gate_id: int
    status: Status = "offline"
    last_seen: datetime | None = None
    heartbeat: int | None = None
    gate_state: p.GateState | int = p.GateState.UNKNOWN
    fault_code: int = 0
    error_kind: ErrorKind | None = None
    last_error: str | None = None  # the technical detail, for the admin and the logs
    since: datetime | None = None

    @property
    def online(self) -> bool:
        """The controller answers (a fault still answers)."""
        return self.status != "offline"

    @property
    def fault(self) -> bool:
        """Answers, but something is wrong (stuck heartbeat, exception replies)."""
        return self.status == "fault"


@dataclass(frozen=True)
class CommandResult:
    """The outcome of Poller.command: ok, or failed with a reason (a stable key the web puts
    in the reader's words) and a technical message for the logs."""

    ok: bool
    gate_id: int
    seq: int = 0
    reason: Literal["ok", "offline", "unknown_gate", "rejected", "not_confirmed", "error"] = "ok"
    message: str = ""


Decide = Callable[[ControllerConfig, p.Snapshot], int]
OnEvent = Callable[[ControllerConfig, p.Snapshot, p.DecisionCode, float], None]
OnState = Callable[[ControllerConfig, ControllerState], None]
ClientFactory = Callable[[ControllerConfig], ModbusTcpClient]


class GeventModbusTcpClient(ModbusTcpClient):
    """pymodbus' sync TCP client over gevent sockets, so it yields instead of blocking.

    pymodbus 3.16 opens its socket with `socket.create_connection` and waits for data with
    `select.select`; both block the whole process unless gevent has monkey-patched them.
    The web process patches, the test process must not, so the client brings its own
    cooperative socket and receive loop and works the same in both.
    """

    last_error: str | None = None

    def connect(self) -> bool:
        """Connect with a gevent socket (cooperative in patched and unpatched processes)."""
        if self.socket:
            return True
        try:
            self.socket = gevent.socket.create_connection(
                (self.comm_params.host, self.comm_params.port),
                timeout=self.comm_params.timeout_connect,
                source_address=self.comm_params.source_address,
            )
        except OSError as exc:
            self.last_error = f"connect: {exc}"
            log.debug("connect %s:%s failed: %s", self.comm_params.host, self.comm_params.port, exc)
            self.close()
        return self.socket is not None

    def send(self, request: bytes, addr: tuple | None = None) -> int:
        """Send the whole frame within the timeout."""
        if not self.socket:
            raise ConnectionException(str(self))
        if not request:
            return 0
        try:
            self.socket.settimeout(self.comm_params.timeout_connect)
            self.socket.sendall(request)
        except OSError:
            self.close()
            raise ConnectionException(f"{self}: send failed") from None
        return len(request)

    def recv(self, size: int | None) -> bytes:
        """Read what arrives within the timeout: `size` bytes, or one chunk when None."""
        if not self.socket:
            raise ConnectionException(str(self))
        deadline = time.monotonic() + (self.comm_params.timeout_connect or 0)
        chunks: list[bytes] = []
        received = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                self.socket.settimeout(remaining)
                data = self.socket.recv(4096 if size is None else size - received)
            except TimeoutError:
                break
            except OSError:
                self.close()
                raise ConnectionException(f"{self}: receive failed") from None
            if not data:
                self.close()
                if chunks:
                    break
                raise ConnectionException(f"{self}: connection closed by the controller")
            chunks.append(data)
            received += len(data)
            if size is None or received >= size:
                break
        return b"".join(chunks)


class Reach(NamedTuple):
    """The controller identity a gate reached, and when (Unix time) it first reached it."""

    identity: tuple
    since: float


def peer_address(client: ModbusTcpClient) -> str | None:
    """The IP address the client's connection reached, as the socket says it; None for a
    client without a socket (test doubles)."""
    sock = getattr(client, "socket", None)
    try:
        return str(sock.getpeername()[0]).split("%")[0]
    except (AttributeError, OSError, IndexError):
        return None


def reached_address(client: ModbusTcpClient, config: ControllerConfig) -> str:
    """The IP address the client's connection actually reached, in one spelling: an
    IPv4-mapped IPv6 address as IPv4, every loopback address as "loopback". Falls back to
    the configured host for a client without a socket (test doubles)."""
    try:
        address = ipaddress.ip_address(peer_address(client) or "")
    except ValueError:
        return config.host.lower()
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return "loopback" if address.is_loopback else str(address)


def make_client(config: ControllerConfig) -> ModbusTcpClient:
    """The default client: cooperative, short timeout, no retries of its own."""
    return GeventModbusTcpClient(
        config.host,
        port=config.port,
        timeout=config.timeout,
        retries=0,
        name=f"gate{config.gate_id}",
    )


def event_is_exit(config: ControllerConfig, snapshot: p.Snapshot) -> bool:
    """Is this event an exit (the gate's configured direction first, then the controller's)?"""
    if config.direction == "exit" or snapshot.event_type == p.EventType.EXIT_BUTTON:
        return True
    if config.direction == "entry":
        return False
    return snapshot.direction == p.Direction.EXIT


def exit_is_free(config: ControllerConfig, snapshot: p.Snapshot) -> bool:
    """Is this event granted without asking `decide`? The exit button always is; any other
    exit only where the territory lets cars out freely."""
    if snapshot.event_type == p.EventType.EXIT_BUTTON:
        return True
    return config.free_exit and event_is_exit(config, snapshot)


def event_direction(config: ControllerConfig, snapshot: p.Snapshot) -> p.Direction:
    """The direction the bridge acted on, for recording the event."""
    return p.Direction.EXIT if event_is_exit(config, snapshot) else p.Direction.ENTRY


def backoff_delay(
    attempt: int,
    base: float = BACKOFF_BASE_S,
    cap: float = BACKOFF_CAP_S,
    rng: Callable[[float, float], float] = random.uniform,
) -> float:
    """Pause before reconnect attempt `attempt` (0, 1, ...): doubling, jittered, at most `cap`.

    The jitter (a random point in the upper half) keeps many controllers that went down
    together from being retried in lockstep.
    """
    ceiling = min(cap, base * (2 ** min(attempt, 32)))
    return rng(ceiling / 2, ceiling)


class TransportError(Exception):
    """The controller did not answer (timeout, refused, reset): not a device's reply."""


class DeviceError(Exception):
    """The controller answered with a Modbus exception reply."""

    def __init__(self, what: str, code: int) -> None:
        super().__init__(f"{what}: exception reply {code}")
        self.code = code


@dataclass
class _PendingCommand:
    command: p.Command
    reason: p.CommandReason
    pulse: int
    deadline: float
    result: gevent.event.AsyncResult = field(default_factory=gevent.event.AsyncResult)
    seq: int = 0
    written_at: float | None = None
    # The connection (`_Controller.connection`) its last write went out on, and whether
    # that write was answered (the controller has it, before anything written later).
    connection: int = 0
    answered: bool = False

    def finish(self, result: CommandResult) -> None:
        if not self.result.ready():
            self.result.set(result)


def _now() -> datetime:
    return datetime.now(UTC)


class _Polled(NamedTuple):
    """The last good poll: when (monotonic), the heartbeat it read, and the watchdog (HR
    200) the bridge had set on that connection (0: none, or the controller refused it)."""

    at: float
    heartbeat: int
    watchdog: int


class _Controller:
    """One controller's connection, its loop and what the bridge knows about it."""

    def __init__(self, poller: Poller, config: ControllerConfig) -> None:
        self.poller = poller
        self.config = config
        self.client: ModbusTcpClient | None = None
        self.wake = gevent.event.Event()
        self.commands: deque[_PendingCommand] = deque()
        self.awaiting_echo: list[_PendingCommand] = []
        self.state = ControllerState(config.gate_id, since=_now())
        # The last event_seq answered (or found answered), kept across reconnects; None
        # until the first poll.
        self.last_seq: int | None = None
        # A decision whose write was lost on the wire: (snapshot, code, latency), until the
        # next connection's first poll tells whether the controller took it.
        self.unconfirmed: tuple[p.Snapshot, p.DecisionCode, float] | None = None
        # The controller's identity as claimed for this gate (Poller.claim), while connected.
        self.identity: tuple | None = None
        # The last lookup of the gate's name (`resolve`), kept while it has not answered.
        self.lookup: gevent.event.AsyncResult | None = None
        # When the controller last refused a decision (exception reply), and why: shown for
        # REFUSAL_SHOWN_S, so the manager sees it although the next poll succeeds.
        self.refused: tuple[float, str] | None = None
        # Polled since the current connection was made (command echo and heartbeat known).
        self.synced = False
        # Connections made so far: commands written on one are acted on in order.
        self.connection = 0
        self.polled: _Polled | None = None
        # HR 200 as set on the current connection (0 until set, or when refused).
        self.watchdog = 0
        self.last_answer: float | None = None
        self.started = time.monotonic()
        self.heartbeat: int | None = None
        self.heartbeat_moved = time.monotonic()
        self.attempt = 0
        self.command_seq = 0
        self.polls = 0
        self.state_reported = 0.0
        self.greenlet: gevent.Greenlet | None = None

    # -- the loop ------------------------------------------------------------------

    def run(self) -> None:
        """Connect, poll, answer and send commands until killed."""
        poll_s = self.config.poll_ms / 1000
        next_poll = time.monotonic()
        while True:
            try:
                if self.client is not None and not self.poller.holds(self):
                    self._taken(self.poller.holder(self.identity))
                if self.client is None and not self._connect():
                    self._wait_before_retry()
                    next_poll = time.monotonic()
                    continue
                if self.commands:
                    self._send_commands()
                    # Read back at once: confirms the command and catches any new event.
                    next_poll = time.monotonic()
                now = time.monotonic()
                if now >= next_poll:
                    self._poll()
                    # Fixed rate, but never a burst of catch-up polls after a slow one.
                    next_poll = max(next_poll + poll_s, time.monotonic())
            except TransportError as exc:
                synced = self.synced
                self._transport_failed(str(exc))
                if not synced:
                    # Failed before its first good poll: as good as a failed connect.
                    self._wait_before_retry()
                next_poll = time.monotonic()
                continue
            self.wake.clear()
            delay = next_poll - time.monotonic()
            if self.commands:
                continue
            if delay > 0:
                self.wake.wait(delay)
            else:
                gevent.sleep(0)

    def _connect(self) -> bool:
        addresses = self._addresses()
        if addresses is None:
            return False
        client = None
        for address in addresses:
            # To the address checked, never to the name: resolved again, a name could
            # answer another address this time (DNS rebinding).
            client = self.poller.client_factory(replace(self.config, host=address))
            if client.connect():
                break
            client.close()
        else:
            self._no_answer("unreachable",
                            getattr(client, "last_error", None) or "connect failed")
            return False
        self.client = client
        self.connection += 1
        self.watchdog = 0
        # What was reached, not only what the name resolved to a moment before.
        peer = peer_address(client)
        if peer is not None and outside_networks(peer, self.poller.networks):
            self._not_allowed(peer)
            return False
        # The first poll on this connection re-learns the command echo and heartbeat, and
        # answers an event captured meanwhile (see the module's docstring).
        self.synced = False
        try:
            registers = self._read_info(client)
        except TransportError as exc:
            self._transport_failed(str(exc))
            return False
        info = p.DeviceInfo.decode(registers, self.config.word_order) if registers else None
        if info is not None and info.map_version != p.MAP_VERSION:
            self._drop("unsupported", f"map_version {info.map_version}, expected {p.MAP_VERSION}")
            return False
        if self.config.serial is not None and (info is None or info.serial != self.config.serial):
            # Not named in the detail: the gates page would tell a manager the serial of
            # whatever answers at an address they typed.
            self._drop("wrong_serial", "serial differs from the one given for the gate")
            return False
        # The serial's two registers read one way whatever word order the gate is set to:
        # decoded by the gate's own setting, one device was two identities, and a manager
        # who set «младшее слово первым» served another territory's controller beside it.
        device = p.DeviceInfo.decode(registers, "big").serial if registers else None
        self.identity = (reached_address(client, self.config), self.config.port,
                         device if device is not None else ("unit", self.config.unit))
        holder = self.poller.claim(self)
        if holder is not None:
            self._taken(holder)
            return False
        try:
            self._set_watchdog(client)
        except TransportError as exc:
            self._transport_failed(str(exc))
            return False
        return True

    def _set_watchdog(self, client: ModbusTcpClient) -> None:
        """HR 200-201 once per connection (a controller that restarted forgets them): exits
        stay free while the bridge is away (SPEC). A controller that refuses the write keeps
        whatever it was set to by hand."""
        try:
            self._call("write HR 200-201", lambda: client.write_registers(
                p.HR_WATCHDOG, [self.poller.watchdog_s, p.OfflinePolicy.DENY_ENTRY_FREE_EXIT],
                device_id=self.config.unit))
        except DeviceError as exc:
            log.info("gate %s: the controller refused its watchdog settings (%s)",
                     self.config.gate_id, exc)
        else:
            self.watchdog = self.poller.watchdog_s

    def _read_info(self, client: ModbusTcpClient) -> list[int] | None:
        """IR 0-3 as read, once per connection; None when the device refuses the read (its
        polls will show why)."""
        try:
            rr = self._call("read IR 0-3", lambda: client.read_input_registers(
                p.IR_INFO_START, count=p.IR_INFO_COUNT, device_id=self.config.unit))
        except DeviceError:
            return None
        if len(rr.registers) != p.IR_INFO_COUNT:
            raise TransportError(f"read IR 0-3: {len(rr.registers)} registers")
        return list(rr.registers)

    def _addresses(self) -> list[str] | None:
        """The addresses to try for the gate's host, resolved once, in the resolver's
        order; None (the gate's state says why) when the name does not resolve within
        RESOLVE_S or, with GATE_NETWORKS set, any address is outside them: then the bridge
        does not connect at all (a manager cannot make it probe the installation's other
        hosts, nor learn which of them listen)."""
        host = self.config.host
        if self.lookup is not None and not self.lookup.ready():
            # One lookup a gate at a time: a name that never answers keeps one query
            # waiting (until c-ares gives up), not one per attempt.
            self._no_answer("unreachable", f"resolve {host}: the last lookup is still waiting")
            return None
        self.lookup = self.poller.resolve(host, self.config.port)
        try:
            addresses = self.lookup.get(timeout=RESOLVE_S)
        except gevent.Timeout:
            self._no_answer("unreachable", f"resolve {host}: no answer within {RESOLVE_S:g} s")
            return None
        except OSError as exc:
            self._no_answer("unreachable", f"resolve {host}: {exc}")
            return None
        outside = next((a for a in addresses if outside_networks(a, self.poller.networks)),
                       None) if self.poller.networks else None
        if outside is not None:
            self._not_allowed(outside)
            return None
        return addresses

    def _not_allowed(self, address: str) -> None:
        log.warning("gate %s: %s is outside GATE_NETWORKS, not connected",
                    self.config.gate_id, address)
        self._drop("address_not_allowed", f"{address} is outside GATE_NETWORKS")

    def _drop(self, kind: ErrorKind, message: str) -> None:
        """Close a connection the bridge will not serve, as a fault: it answers, but no
        event is read, decided or recorded and no command sent; retried with backoff."""
        self.poller.release(self)
        if self.client is not None:
            self.client.close()
            self.client = None
        self._set_state(status="fault", error_kind=kind, last_error=message)
        self._fail_commands("offline", message)

    def _taken(self, holder: int | None) -> None:
        log.warning("gate %s reaches the controller of gate %s (%s): not served",
                    self.config.gate_id, holder, self.identity)
        self._drop("controller_taken", f"the controller is served by gate {holder}")

    def _wait_before_retry(self) -> None:
        if self.state.status == "offline" or self.state.error_kind in (
                "controller_taken", "unsupported", "address_not_allowed", "wrong_serial"):
            delay = backoff_delay(
                self.attempt, self.poller.backoff_base, self.poller.backoff_cap, self.poller.rng
            )
            self.attempt += 1
        else:
            # Still inside the grace period before offline: keep trying at the poll rate.
            delay = max(self.config.poll_ms / 1000, 0.05)
        self.poller.reconnect_waits.append((self.config.gate_id, delay))
        # Woken early when the gate holding its controller goes (Poller._remove).
        self.wake.clear()
        self.wake.wait(delay)

    def _transport_failed(self, message: str) -> None:
        self.poller.release(self)
        if self.client is not None:
            self.client.close()
            self.client = None
        self._no_answer("no_answer", message)

    def _no_answer(self, kind: ErrorKind, message: str) -> None:
        now = time.monotonic()
        reference = self.last_answer if self.last_answer is not None else self.started
        status = self.state.status
        if status != "offline" and now - reference >= self.poller.offline_after:
            status = "offline"
            log.warning("gate %s offline: %s", self.config.gate_id, message)
        self._set_state(status=status, error_kind=kind, last_error=message)
        if status == "offline":
            self._fail_commands("offline", message)

    # -- Modbus I/O: building, talking and failing kept apart -------------------------

    def _call(self, what: str, request: Callable[[], Any]) -> Any:
        try:
            rr = request()
        except (ModbusException, OSError) as exc:
            raise TransportError(f"{what}: {exc}") from exc
        if rr.isError():
            raise DeviceError(what, getattr(rr, "exception_code", 0))
        return rr

    def _read_snapshot(self) -> p.Snapshot:
        client = self.client
        if client is None:
            raise TransportError("not connected")
        rr = self._call(
            "read IR 16-47",
            lambda: client.read_input_registers(
                p.IR_SNAPSHOT_START, count=p.IR_SNAPSHOT_COUNT, device_id=self.config.unit
            ),
        )
        if len(rr.registers) != p.IR_SNAPSHOT_COUNT:
            raise TransportError(f"read IR 16-47: {len(rr.registers)} registers")
        return p.decode_snapshot(rr.registers, self.config.word_order)

    def _write(self, what: str, address: int, registers: list[int]) -> None:
        client = self.client
        if client is None:
            raise TransportError("not connected")
        self._call(
            what,
            lambda: client.write_registers(address, registers, device_id=self.config.unit),
        )

    # -- polling and events ---------------------------------------------------------

    def _poll(self) -> None:
        try:
            snap = self._read_snapshot()
        except DeviceError as exc:
            # It answered, so it is not offline; but it cannot be read: a fault.
            self.last_answer = time.monotonic()
            self._set_state(status="fault", last_seen=_now(), error_kind="device_error",
                            last_error=str(exc))
            return
        read_at = time.monotonic()
        self.polls += 1
        self.poller.polls += 1
        self.last_answer = read_at
        self.attempt = 0
        before, self.polled = self.polled, _Polled(read_at, snap.heartbeat, self.watchdog)
        if not self.synced:
            self.synced = True
            self.command_seq = snap.command_seq_echo
            self.heartbeat = snap.heartbeat
            self.heartbeat_moved = read_at
            self._catch_up(snap, read_at, before)
        elif snap.event_seq != self.last_seq:
            if snap.event_seq == 0:
                self.last_seq = 0  # none since boot: it restarted
            elif snap.event_age >= self.poller.event_max_age:
                self._too_old(snap)
            else:
                self._answer(snap, read_at)
        self._check_commands(snap)
        self._observe(snap, read_at)

    def _catch_up(self, snap: p.Snapshot, read_at: float, before: _Polled | None) -> None:
        """The first poll of a connection: answer the event found there when nobody has
        (see the module's docstring), record a decision whose reply was lost.

        Answered is the controller's word (IR 40), or this bridge's for the event it
        handled on the last connection, while the controller has not restarted since
        (`_ran_on`): a controller that rebooted quickly reuses the seqs it had (event_seq
        back to 1), and a heartbeat lower than before does not find every restart."""
        seq = snap.event_seq
        lost, self.unconfirmed = self.unconfirmed, None
        if lost is not None and lost[0].event_seq == seq and snap.applied_decision_seq == seq:
            # The write got there, only its reply was lost: the person was answered.
            self.last_seq = seq
            self._record(*lost)
            return
        if lost is not None and (lost[0].event_seq != seq
                                 or snap.event_age >= self.poller.event_max_age):
            # Never delivered, and not to be answered now (the controller moved on, or it is
            # too old): logged as not done, so the presentation leaves a trace.
            self._record(lost[0], p.DecisionCode.TRY_AGAIN, lost[2])
            lost = None
        if seq == 0 or snap.applied_decision_seq == seq:
            self.last_seq = seq
            return
        if seq == self.last_seq and lost is None and self._ran_on(snap, read_at, before):
            # Handled on an earlier connection, by an answer or by leaving it to the
            # controller's own policy, which fills no IR 40: an exit let out offline was
            # opened again at the second of two quick reconnects (review, stop 23). A
            # controller that restarted meanwhile may reuse the seq for a new car: its
            # heartbeat tells, unless it was back within RESTART_SLACK_S.
            return
        if snap.event_age >= self.poller.event_max_age:
            self._too_old(snap)
            return
        if self._let_out_on_its_own(snap, read_at, before):
            # Not answered, but logged as what it was: the controller let them out (SPEC:
            # every decision is an event; the review at stop 23 found it in no journal).
            log.info("gate %s: event %s was an exit the controller let out on its own, "
                     "not answered", self.config.gate_id, seq)
            self.last_seq = seq
            self._record(snap, p.DecisionCode.GRANT, 0.0)
            return
        self._answer(snap, read_at)

    def _let_out_on_its_own(self, snap: p.Snapshot, read_at: float,
                            before: _Polled | None) -> bool:
        """Did the controller's offline policy already open for this event? With the bridge
        away longer than the watchdog it set (HR 200), the controller works on its own and
        lets every exit out (HR 201: deny entry / free exit); a GRANT for the same event
        would pulse the relay a second time, for whoever follows.

        The controller does not say so in IR 40-41 (they echo the bridge's decisions; a
        controller that did fill them is caught above), so it is worked out from what it
        does say: the event's direction and type (its policy's view, not the gate's
        configured direction), the event's age (IR 39), and its heartbeat, which must have
        counted the same seconds as the bridge since the last poll — a controller that
        restarted meanwhile forgot the watchdog and opened nothing by itself. The age is in
        whole seconds: the capture is put in the middle of its second. No earlier poll (the
        bridge itself restarted) tells nothing, and the event is answered as before."""
        if before is None or before.watchdog <= 0:
            return False
        if snap.direction != p.Direction.EXIT and snap.event_type != p.EventType.EXIT_BUTTON:
            return False  # an entry: the policy refused it, the bridge may still answer
        if not self._ran_on(snap, read_at, before):
            return False  # restarted (or away past the heartbeat's wrap): nothing opened
        captured_after = read_at - before.at - snap.event_age - 0.5
        return captured_after > before.watchdog

    @staticmethod
    def _ran_on(snap: p.Snapshot, read_at: float, before: _Polled | None) -> bool:
        """Whether the controller ran on since the last good poll, without a restart: its
        heartbeat counted the seconds the bridge counted, within RESTART_SLACK_S. No
        earlier poll (this bridge just started) says nothing: False."""
        if before is None:
            return False
        counted = (snap.heartbeat - before.heartbeat) & p.U16_MAX
        return abs(counted - (read_at - before.at)) <= RESTART_SLACK_S

    def _too_old(self, snap: p.Snapshot) -> None:
        """An event captured EVENT_MAX_AGE_S or more ago is not answered: whoever presented
        it has walked off or presented again, and opening now would let the next one in."""
        log.info("gate %s: event %s is %s s old, not answered", self.config.gate_id,
                 snap.event_seq, snap.event_age)
        self.last_seq = snap.event_seq

    def _answer(self, snap: p.Snapshot, read_at: float) -> None:
        config = self.config
        if exit_is_free(config, snap):
            code = p.DecisionCode.GRANT
        else:
            code = self._decide(snap)
        try:
            self._write(
                "write HR 100-103", p.HR_DECISION_START, p.encode_decision(snap.event_seq, code)
            )
        except DeviceError as exc:
            log.warning("gate %s refused decision %s: %s", config.gate_id, snap.event_seq, exc)
            self.refused = (time.monotonic(), str(exc))
            self._set_state(error_kind="decision_refused", last_error=str(exc))
        except TransportError:
            # Not marked answered: the next connection's first poll decides what to do.
            self.unconfirmed = (snap, code, time.monotonic() - read_at)
            raise
        self.last_seq = snap.event_seq
        self._record(snap, code, time.monotonic() - read_at)

    def _record(self, snap: p.Snapshot, code: p.DecisionCode, latency: float) -> None:
        try:
            self.poller.on_event(self.config, snap, code, latency)
        except Exception:
            log.exception("on_event failed for gate %s event %s", self.config.gate_id,
                          snap.event_seq)

    def _decide(self, snap: p.Snapshot) -> p.DecisionCode:
        try:
            with gevent.Timeout(self.poller.decide_timeout):
                return p.DecisionCode(self.poller.decide(self.config, snap))
        except gevent.Timeout:
            log.warning("gate %s: decision took too long, answering try-again", self.config.gate_id)
        except Exception:
            log.exception("gate %s: decide failed, answering try-again", self.config.gate_id)
        return p.DecisionCode.TRY_AGAIN

    def _observe(self, snap: p.Snapshot, read_at: float) -> None:
        if snap.heartbeat != self.heartbeat:
            self.heartbeat = snap.heartbeat
            self.heartbeat_moved = read_at
        stuck = read_at - self.heartbeat_moved >= self.poller.stuck_after
        kind: ErrorKind | None
        error: str | None
        if stuck:
            status: Status = "fault"
            kind = "stuck"
            error = f"heartbeat {snap.heartbeat} unchanged for {self.poller.stuck_after:g} s"
        elif snap.gate_state == p.GateState.FAULT:
            status, kind = "fault", "gate_fault"
            error = f"gate_state fault, fault_code {snap.fault_code}"
        elif self.refused is not None and read_at - self.refused[0] < REFUSAL_SHOWN_S:
            status, kind, error = "online", "decision_refused", self.refused[1]
        else:
            status, kind, error = "online", None, None
        self._set_state(
            status=status,
            last_seen=_now(),
            heartbeat=snap.heartbeat,
            gate_state=snap.gate_state,
            fault_code=snap.fault_code,
            error_kind=kind,
            last_error=error,
        )

    # -- commands -------------------------------------------------------------------

    def _fresh_command_seq(self, echo: int) -> int:
        seq = p.next_seq(self.command_seq)
        if seq == echo:
            seq = p.next_seq(seq)
        self.command_seq = seq
        return seq

    def _send_commands(self) -> None:
        while self.commands:
            pending = self.commands.popleft()
            if time.monotonic() > pending.deadline:
                # The caller has given up; firing now would open for nobody.
                self._fail(pending, "not_confirmed", "given up before it was sent")
                continue
            if not self.synced:
                # Connected but not yet polled: learn command_seq_echo before choosing a seq.
                self.commands.appendleft(pending)
                self._poll()
                if not self.synced:
                    return
                continue
            pending.seq = self._fresh_command_seq(self.command_seq)
            registers = p.encode_command(
                pending.seq, pending.command, pending.pulse, pending.reason
            )
            self._write_command(pending, registers)

    def _write_command(self, pending: _PendingCommand, registers: list[int]) -> None:
        try:
            self._write("write HR 120-123", p.HR_COMMAND_START, registers)
        except DeviceError as exc:
            self._fail(pending, "rejected", str(exc))
            return
        except TransportError as exc:
            # The answer may have been lost after the controller acted. Writing the same
            # command_seq again is safe: the controller acts only when the seq changes.
            log.info(
                "gate %s: command %s write failed (%s), retrying once",
                self.config.gate_id,
                pending.seq,
                exc,
            )
            self._transport_failed(str(exc))
            if time.monotonic() > pending.deadline or not self._connect():
                # Gone: the press fails at once (GATE_PROTOCOL rule 4).
                self._fail(pending, "offline", str(exc))
                return
            try:
                self._write("write HR 120-123", p.HR_COMMAND_START, registers)
            except DeviceError as exc2:
                self._fail(pending, "rejected", str(exc2))
                return
            except TransportError:
                # Written twice, on two live connections, and never answered: the controller
                # may have acted and lost only its replies. Like any written command it waits
                # for the echo (IR 42), here on the next connection's first poll, or fails
                # with the others when the controller goes offline or the caller gives up —
                # not «offline» at once while the gate may have opened.
                self._await_echo(pending, answered=False)
                raise
        self._await_echo(pending)

    def _await_echo(self, pending: _PendingCommand, answered: bool = True) -> None:
        pending.written_at = time.monotonic()
        pending.connection = self.connection
        pending.answered = answered
        self.awaiting_echo.append(pending)

    def _check_commands(self, snap: p.Snapshot) -> None:
        """Settle the written commands by the controller's echo (IR 42).

        The controller acts on every change of HR 120 (GATE_PROTOCOL), but IR 42 shows only
        the last: two «Открыть» written before the next poll both opened, and the first was
        failed as «no echo» and logged as not opened. So the echo of a command confirms
        every command written before it whose write the controller answered — it had that
        one before the later was sent, as every earlier write on the same connection. One
        whose write went unanswered before a reconnect may never have got there: only its
        own echo confirms it. "Before" is the order of writing (`awaiting_echo`), never seq
        arithmetic: seqs wrap 65535 -> 1.

        A command written on an earlier connection is settled by the first poll of this
        one, and fails there if not confirmed: new commands take their seqs from the echo
        again, and one that never got there would be confirmed by a new one reusing its seq.
        """
        if not self.awaiting_echo:
            return
        now = time.monotonic()
        # The last command the echo names (-1: none).
        echoed = max((i for i, c in enumerate(self.awaiting_echo)
                      if c.seq == snap.command_seq_echo), default=-1)
        still: list[_PendingCommand] = []
        for i, pending in enumerate(self.awaiting_echo):
            if i == echoed or (i < echoed and pending.answered):
                pending.finish(CommandResult(True, self.config.gate_id, pending.seq, "ok"))
            elif pending.connection != self.connection:
                self._fail(pending, "not_confirmed", "no echo of the command after a reconnect")
            elif now > pending.deadline:
                self._fail(pending, "not_confirmed", "no echo of the command")
            else:
                still.append(pending)
        self.awaiting_echo = still

    def _fail_commands(self, reason: str, message: str) -> None:
        failed = list(self.commands) + self.awaiting_echo
        self.commands.clear()
        self.awaiting_echo = []
        for pending in failed:
            self._fail(pending, reason, message)

    def _fail(self, pending: _PendingCommand, reason: str, message: str) -> None:
        """The command failed: its caller learns why (a CommandResult reason) and the detail."""
        pending.finish(CommandResult(False, self.config.gate_id, pending.seq, reason, message))  # type: ignore[arg-type]

    # -- state ----------------------------------------------------------------------

    def _set_state(self, **changes: Any) -> None:
        old = self.state
        new = replace(old, **changes)
        if new.status != old.status:
            new = replace(new, since=_now())
            if new.status == "fault":
                log.warning("gate %s fault: %s", self.config.gate_id, new.last_error)
            elif new.status == "online":
                log.info("gate %s online", self.config.gate_id)
        self.state = new
        now = time.monotonic()
        significant = (
            new.status != old.status
            or new.error_kind != old.error_kind
            or new.last_error != old.last_error
            or new.gate_state != old.gate_state
        )
        if significant or now - self.state_reported >= self.poller.state_every:
            self.state_reported = now
            if self.poller.on_state is not None:
                try:
                    self.poller.on_state(self.config, new)
                except Exception:
                    log.exception("on_state failed for gate %s", self.config.gate_id)


class Poller:
    """All controllers of one bridge process: start(), stop(), update(), command()."""

    def __init__(
        self,
        configs: Iterable[ControllerConfig],
        decide: Decide,
        on_event: OnEvent,
        on_state: OnState | None = None,
        *,
        client_factory: ClientFactory = make_client,
        offline_after: float = OFFLINE_AFTER_S,
        stuck_after: float = STUCK_AFTER_S,
        backoff_base: float = BACKOFF_BASE_S,
        backoff_cap: float = BACKOFF_CAP_S,
        decide_timeout: float | None = DECIDE_TIMEOUT_S,
        state_every: float = STATE_EVERY_S,
        event_max_age: float = EVENT_MAX_AGE_S,
        watchdog_s: int = WATCHDOG_S,
        networks: Sequence[Network] = (),
        rng: Callable[[float, float], float] = random.uniform,
        dns: dict[str, Any] | None = None,
    ) -> None:
        self.configs = {c.gate_id: c for c in configs}
        self.decide = decide
        self.on_event = on_event
        self.on_state = on_state
        self.client_factory = client_factory
        self.offline_after = offline_after
        self.stuck_after = stuck_after
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.decide_timeout = decide_timeout
        self.state_every = state_every
        self.event_max_age = event_max_age
        self.watchdog_s = watchdog_s
        # GATE_NETWORKS: where controllers may be; empty, anywhere.
        self.networks = tuple(networks)
        self.rng = rng
        # c-ares's settings (gevent.resolver.cares.channel: servers, udp_port, …); none, the
        # system's /etc/resolv.conf and /etc/hosts.
        self.dns = dict(dns or {})
        self._resolver: Resolver | None = None
        self.group = Group()
        self.controllers: dict[int, _Controller] = {}
        self.running = False
        self.polls = 0
        # (gate_id, seconds) of every pause before a reconnect; bounded, for tests and logs.
        self.reconnect_waits: deque[tuple[int, float]] = deque(maxlen=1000)
        # Controller identity -> the connected controller serving it (one gate per device),
        # and the identity each gate last reached, kept while it reconnects (`claim`), with
        # the moment (Unix time) it first reached it: what ranks two gates reaching one.
        self.claims: dict[tuple, _Controller] = {}
        self.reached: dict[int, Reach] = {}
        # Gates switched off («Включены» unticked) whose controller is not polled but stays
        # theirs: the identity they reached keeps its claim (`update`, `claim`).
        self.held: dict[int, ControllerConfig] = {}

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> Poller:
        """Spawn one greenlet per configured controller."""
        if not self.running:
            self.running = True
            for config in self.configs.values():
                self._spawn(config)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Kill every controller's greenlet and close its connection."""
        self.running = False
        controllers = list(self.controllers.values())
        self.controllers.clear()
        self.group.kill(timeout=timeout)
        for controller in controllers:
            self._close(controller)
        if self._resolver is not None:
            self._resolver.close()
            self._resolver = None

    def resolve(self, host: str, port: int) -> gevent.event.AsyncResult:
        """The addresses `host` resolves to (in the resolver's order, without repeats), as a
        result to wait for. An IP address is its own answer. A name is asked of the
        poller's c-ares resolver, which waits on its sockets in the event loop: any number
        of lookups wait at once and none holds a thread. On threads (the hub's, which also
        hashes passwords, then four of the bridge's own), names whose servers never answer,
        twenty of one territory's gates, held every thread, and every other territory's
        gates named by a name stayed offline (claims audits, stop 22)."""
        answer = gevent.event.AsyncResult()
        try:
            answer.set([str(ipaddress.ip_address(host))])
        except ValueError:
            self.group.spawn(self._look_up, host, port, answer)  # stop() ends it
        return answer

    def _look_up(self, host: str, port: int, answer: gevent.event.AsyncResult) -> None:
        if self._resolver is None:
            # Each server asked once for RESOLVE_S: a lookup ends when its gate stops waiting.
            self._resolver = Resolver(**{"timeout": RESOLVE_S, "tries": 1, **self.dns})
        try:
            found = self._resolver.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except OSError as exc:  # no such name, no answer: the gate's state says so
            answer.set_exception(exc)
        else:
            answer.set(list(dict.fromkeys(str(info[4][0]) for info in found)))

    def __enter__(self) -> Poller:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def update(self, configs: Iterable[ControllerConfig],
               held: Iterable[ControllerConfig] = (),
               known: dict[int, tuple] | None = None,
               territories: set[int] | None = None) -> None:
        """Add, remove and reconfigure controllers while running; unchanged ones keep going.

        `held`: gates switched off. Their controllers are not polled, but a controller such
        a gate reached stays its own: switching a gate off for maintenance used to free the
        claim, and another territory's gate naming the same device by another spelling
        took the barrier over within seconds. Moved to another address, a held gate lets
        go of the old one.

        `known`: identities gates reached before this poller, each with the moment it was
        first reached (stored by an earlier bridge, for the gate's current address), so
        that after a restart a gate keeps its controller before it reconnects, and a gate
        switched off keeps it though nothing connects.

        A gate whose settings change but not its address (host, port, unit) keeps what it
        reached: a new poll interval must not hand its controller to whoever reconnects
        first.

        `territories`: when given, `configs` and `held` are all the gates of these
        territories, and the gates of every other territory are left as they are.
        """
        wanted = {c.gate_id: c for c in configs}
        keep = {c.gate_id: c for c in held}

        def changing(found: dict[int, ControllerConfig]) -> list[int]:
            if territories is None:
                return list(found)
            return [gate_id for gate_id, c in found.items() if c.territory_id in territories]

        for gate_id in changing(self.held):
            if (gate_id in wanted or gate_id not in keep
                    or keep[gate_id].device != self.held[gate_id].device):
                del self.held[gate_id]
                if gate_id not in self.configs:
                    self.reached.pop(gate_id, None)
        for gate_id in changing(self.configs):
            old = self.configs[gate_id]
            new = wanted.get(gate_id)
            if new == old:
                continue  # most gates, most times
            if new is None and gate_id in keep and keep[gate_id].device == old.device:
                self._remove(gate_id, keep_claim=True)
                self.held[gate_id] = keep[gate_id]
            elif new is None or replace(new, free_exit=old.free_exit) != old:
                self._remove(gate_id, keep_claim=new is not None and new.device == old.device)
            elif new != old:
                # Only how exits are answered changed: keep the connection and the seq seen.
                self.configs[gate_id] = new
                if gate_id in self.controllers:
                    self.controllers[gate_id].config = new
        for gate_id, config in wanted.items():
            if gate_id not in self.configs:
                self.configs[gate_id] = config
                if self.running:
                    self._spawn(config)
        # Before any of them connects: a gate that reached its controller under an earlier
        # bridge ranks as having it, not only once it reconnects.
        for gate_id, reach in (known or {}).items():
            if gate_id in keep and gate_id not in self.configs:
                self.held.setdefault(gate_id, keep[gate_id])
            if gate_id in self.configs or gate_id in self.held:
                self.reached.setdefault(gate_id, reach)

    # -- one controller, one gate ---------------------------------------------------

    def claim(self, controller: _Controller) -> int | None:
        """Claim `controller.identity` for its gate; the gate id holding it instead, or None.

        A gate given the controller's serial (only its own controller gets past `_connect`)
        wins over any gate without one. Otherwise the gate that reached this controller
        first (`Reach.since`, then the lower id) wins, connected or not: a gate keeps the
        identity it last reached (`reached`) through its disconnects, until it is removed
        or moved to another address, so another gate cannot take another territory's
        controller in the seconds the first one spends reconnecting (a reboot, a flapping
        link). The winner takes the identity from the other, which drops its connection at
        its next turn (`holds`).

        Ranked by when a gate's address was written (stop 21), a manager kept an old
        gate's rank while re-pointing the DNS name it names at another territory's
        controller, and took that barrier over; ranked by gate id, an old gate re-pointed
        by address did. Whatever its settings say, a gate reaching a device it has not
        reached before ranks from now.
        """
        identity, gate_id = controller.identity, controller.config.gate_id
        before = self.reached.get(gate_id)
        since = before.since if before is not None and before.identity == identity else time.time()
        mine = (controller.config.serial is None, since, gate_id)
        older = [(self._rank(other), other) for other, seen in self.reached.items()
                 if seen.identity == identity and other != gate_id
                 and (other in self.configs or other in self.held)
                 and self._rank(other) < mine]
        if older:
            return min(older)[1]
        holder = self.claims.get(identity)
        if holder is not None and holder is not controller:
            holder.wake.set()
        self.claims[identity] = controller
        self.reached[gate_id] = Reach(identity, since)
        return None

    def _rank(self, gate_id: int) -> tuple[bool, float, int]:
        config = self.configs.get(gate_id) or self.held.get(gate_id)
        unbound = config is None or config.serial is None
        reach = self.reached.get(gate_id)
        return (unbound, reach.since if reach is not None else float("inf"), gate_id)

    def holds(self, controller: _Controller) -> bool:
        """Whether the controller still serves its identity (no older gate took it)."""
        return controller.identity is None or self.claims.get(controller.identity) is controller

    def holder(self, identity: tuple | None) -> int | None:
        holder = self.claims.get(identity) if identity is not None else None
        return None if holder is None else holder.config.gate_id

    def release(self, controller: _Controller) -> None:
        """Give up the controller's identity (disconnected, removed, stopped)."""
        if controller.identity is not None and self.claims.get(controller.identity) is controller:
            del self.claims[controller.identity]
        controller.identity = None

    def _spawn(self, config: ControllerConfig) -> None:
        controller = _Controller(self, config)
        self.controllers[config.gate_id] = controller
        greenlet = self.group.spawn(controller.run)
        controller.greenlet = greenlet
        greenlet.link_exception(self._crashed)

    def _remove(self, gate_id: int, keep_claim: bool = False) -> None:
        self.configs.pop(gate_id, None)
        if not keep_claim:
            self.reached.pop(gate_id, None)  # removed or moved: it may reach another
        controller = self.controllers.pop(gate_id, None)
        if controller is not None:
            held = controller.identity if self.holds(controller) else None
            if controller.greenlet is not None:
                controller.greenlet.kill(block=True, timeout=5)
            self._close(controller)
            if held is not None and not keep_claim:
                # Gates refused a controller try again at once, not after their backoff (up
                # to 30 s with the barrier unserved: bridge audit, stop 24): one of them
                # may be waiting for this one. A refused gate no longer knows which one it
                # was refused (its identity is released), so all of them try.
                for waiting in self.controllers.values():
                    if waiting.state.error_kind == "controller_taken":
                        waiting.attempt = 0
                        waiting.wake.set()

    def _close(self, controller: _Controller) -> None:
        self.release(controller)
        controller._fail_commands("offline", "bridge stopped")
        if controller.client is not None:
            controller.client.close()
            controller.client = None

    def _crashed(self, greenlet: gevent.Greenlet) -> None:
        log.error("gatebridge controller greenlet crashed", exc_info=greenlet.exc_info)
        for gate_id, controller in list(self.controllers.items()):
            if controller.greenlet is greenlet:
                self._close(controller)
                if self.running and gate_id in self.configs:
                    # One controller's bug must not leave its gate unpolled for good.
                    gevent.spawn_later(CRASH_RESTART_S, self._respawn, gate_id, controller)

    def _respawn(self, gate_id: int, crashed: _Controller) -> None:
        if self.running and self.controllers.get(gate_id) is crashed:
            self._spawn(self.configs[gate_id])

    # -- what the app asks ------------------------------------------------------------

    def states(self) -> dict[int, ControllerState]:
        """The current state of every controller, by gate id."""
        return {gate_id: c.state for gate_id, c in self.controllers.items()}

    def state(self, gate_id: int) -> ControllerState | None:
        """One controller's state, or None when the gate is not configured."""
        controller = self.controllers.get(gate_id)
        return None if controller is None else controller.state

    def command(
        self,
        gate_id: int,
        command: p.Command | int = p.Command.OPEN,
        reason: p.CommandReason | int = p.CommandReason.PHONE,
        pulse: int = 0,
        timeout: float = COMMAND_CONFIRM_S,
    ) -> CommandResult:
        """Send a command ahead of any waiting poll and wait (cooperatively) for its echo.

        Fails at once when the controller is offline: a command is never queued to fire
        later. After `timeout` the command is dropped if it has not been written yet.
        Call it from a greenlet of the bridge's own hub (a request handler of `python app.py`
        or a task of `python -m gatebridge`), not from another OS thread.
        """
        command = p.Command(command)
        reason = p.CommandReason(reason)
        p.check_u16(pulse, "pulse")
        controller = self.controllers.get(gate_id)
        if controller is None:
            return CommandResult(False, gate_id, reason="unknown_gate", message="no such gate")
        if not controller.state.online or controller.client is None:
            return CommandResult(False, gate_id, reason="offline", message="not online")
        pending = _PendingCommand(command, reason, pulse, deadline=time.monotonic() + timeout)
        controller.commands.append(pending)
        controller.wake.set()
        # Wait past the deadline by two I/O timeouts: a write started just before it ends.
        try:
            return pending.result.get(timeout=timeout + controller.config.timeout * 2 + 0.1)
        except gevent.Timeout:
            if pending in controller.commands:
                controller.commands.remove(pending)
            return CommandResult(
                False, gate_id, pending.seq, "not_confirmed", "no echo of the command"
            )
