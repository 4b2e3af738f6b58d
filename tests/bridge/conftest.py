"""Bridge fixtures: a real simulator process on free ports and Modbus clients to talk to it."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pymodbus.client import ModbusTcpClient

from gatebridge import protocol as p

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 20


@dataclass
class SimulatorProcess:
    """A running `python -m gatebridge.simulator` and the addresses it printed."""

    proc: subprocess.Popen
    modbus_host: str
    modbus_port: int
    control_url: str
    log_path: Path
    word_order: p.WordOrder = "big"
    clients: list[ModbusTcpClient] = field(default_factory=list)
    # Every controller's (host, port) when started with --count; [0] is modbus_host/port.
    addresses: list[tuple[str, int]] = field(default_factory=list)

    def client(self) -> ModbusTcpClient:
        """A connected sync Modbus client, closed at teardown."""
        client = ModbusTcpClient(self.modbus_host, port=self.modbus_port, timeout=3)
        self.clients.append(client)
        assert client.connect(), self.log()
        return client

    def snapshot(self, client: ModbusTcpClient) -> p.Snapshot:
        """One FC04 read of IR 16-47, as the bridge polls."""
        rr = client.read_input_registers(p.IR_SNAPSHOT_START, count=p.IR_SNAPSHOT_COUNT)
        assert not rr.isError(), rr
        return p.decode_snapshot(rr.registers, self.word_order)

    def relay(self, client: ModbusTcpClient) -> bool:
        """Coil 0."""
        rr = client.read_coils(p.COIL_RELAY, count=1)
        assert not rr.isError(), rr
        return bool(rr.bits[0])

    def post(self, path: str, payload: dict) -> dict:
        """POST JSON to the control API."""
        request = urllib.request.Request(
            self.control_url + path,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def get(self, path: str) -> bytes:
        """GET from the control API."""
        with urllib.request.urlopen(self.control_url + path, timeout=5) as response:
            return response.read()

    def present(self, gate: int = 0, **payload) -> int:
        """Present a credential through the control API; returns its event_seq."""
        return self.post("/present", {"gate": gate, **payload})["event_seq"]

    def state(self, gate: int = 0) -> dict:
        """GET /state."""
        return json.loads(self.get(f"/state?gate={gate}"))

    def freeze_heartbeat(self, frozen: bool = True, gate: int = 0) -> dict:
        """POST /freeze: the controller keeps answering but its heartbeat stops."""
        return self.post("/freeze", {"gate": gate, "heartbeat": frozen})

    def set_seq(self, seq: int, gate: int = 0) -> int:
        """POST /seq."""
        return self.post("/seq", {"gate": gate, "event_seq": seq})["event_seq"]

    def log(self) -> str:
        """The simulator's stderr so far, for assertion messages."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        for client in self.clients:
            client.close()
        self.clients.clear()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def _read_announcement(proc: subprocess.Popen, log_path: Path) -> str:
    """Wait for the SIMULATOR line without hanging if the process never prints it."""
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=0.2):
                line = proc.stdout.readline()
                if line.startswith("SIMULATOR "):
                    return line.strip()
                if not line:
                    break
    proc.kill()
    proc.wait()
    raise AssertionError(f"simulator did not start:\n{log_path.read_text(errors='replace')}")


@pytest.fixture
def start_simulator(tmp_path):
    """Factory: start a simulator subprocess on free ports with extra CLI args."""
    started: list[SimulatorProcess] = []

    def start(*args: str) -> SimulatorProcess:
        log_path = tmp_path / f"simulator-{len(started)}.log"
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gatebridge.simulator", "--port", "0"]
                + ["--control-port", "0", *args],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        line = _read_announcement(proc, log_path)
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        addresses = []
        for address in fields["modbus"].split(","):
            address_host, address_port = address.rsplit(":", 1)
            addresses.append((address_host, int(address_port)))
        host, port = addresses[0]
        word_order = "big"
        if "--word-order" in args:
            word_order = args[args.index("--word-order") + 1]
        sim = SimulatorProcess(
            proc,
            host,
            port,
            f"http://{fields['control']}",
            log_path,
            word_order,
            addresses=addresses,
        )
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def simulator(start_simulator) -> SimulatorProcess:
    """A simulator with default settings."""
    return start_simulator()


@dataclass
class BridgeProcess:
    """A running `python -m gatebridge` on the test app's database."""

    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        """The bridge's stderr so far, for assertion messages."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def start_bridge(tmp_path):
    """Factory: run the bridge as its own process for a DATABASE_URL and instance folder."""
    started: list[BridgeProcess] = []

    def start(database_url: str, instance: Path) -> BridgeProcess:
        log_path = tmp_path / f"bridge-{len(started)}.log"
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gatebridge"],
                cwd=ROOT,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={
                    **os.environ,
                    "PYTHONUNBUFFERED": "1",
                    "DATABASE_URL": database_url,
                    "INSTANCE_PATH": str(instance),
                    "SECRET_KEY": "test-secret",
                    "GATEBRIDGE": "1",
                },
            )
        bridge = BridgeProcess(proc, log_path)
        started.append(bridge)
        return bridge

    yield start
    for bridge in started:
        bridge.stop()


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02):
    """Poll until predicate() is truthy; returns its value or None after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def decision(simulator, seq, timeout=2.0):
    """The decision code the controller applied to event `seq`."""
    state = wait_for(lambda: (s := simulator.state())["applied_decision_seq"] == seq and s,
                     timeout=timeout)
    assert state, simulator.state()
    return state["applied_decision_code"]


def settled_decision(simulator, **presented):
    """The decision for a credential presented again until it is not «try again» (6).

    A first answer needs the database within the 40 ms a decision may take; on PostgreSQL
    (whose waits yield) a busy machine can miss them, and the bridge answers 6 as the
    protocol wants. A driver presents the card again; so does this.
    """
    code = wait_for(lambda: (c := decision(simulator, simulator.present(**presented))) != 6 and c,
                    timeout=10)
    assert code, simulator.state()
    return code
