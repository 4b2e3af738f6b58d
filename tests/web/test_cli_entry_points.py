"""`python -m gatebridge` and `python app.py` as scripts start them: --help only prints, a
bad argument or setting stops them with a message and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], instance: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**clean, "INSTANCE_PATH": str(instance), "PYTHONUNBUFFERED": "1", **env},
    )


def test_gatebridge_help_prints_usage_and_touches_nothing(tmp_path):
    instance = tmp_path / "instance"
    result = _run(["-m", "gatebridge", "--help"], instance)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m gatebridge")
    for said in ("gate controller", "EVENTS_RETENTION_DAYS", "DATABASE_URL", "INSTANCE_PATH"):
        assert said in result.stdout
    assert not instance.exists()  # no database, no secret key, no spool


def test_gatebridge_refuses_an_unknown_argument(tmp_path):
    instance = tmp_path / "instance"
    result = _run(["-m", "gatebridge", "--bogus"], instance)
    assert result.returncode == 2
    assert "usage: python -m gatebridge" in result.stderr
    assert "unrecognized arguments: --bogus" in result.stderr
    assert not instance.exists()


@pytest.mark.parametrize(("args", "name"), [
    (["-m", "gatebridge"], "python -m gatebridge"),
    (["app.py"], "python app.py"),
])
def test_an_unreadable_setting_stops_the_process_with_a_message(tmp_path, args, name):
    result = _run(args, tmp_path / "instance", GATEBRIDGE="maybe")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"{name}: GATEBRIDGE='maybe': expected 1/0, true/false, yes/no or on/off"
    )


def test_app_py_refuses_a_port_that_is_not_a_port(tmp_path):
    result = _run(["app.py"], tmp_path / "instance", PORT="70000")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "PORT='70000': expected a positive integer up to 65535" in result.stderr


def test_a_flask_command_with_an_unreadable_setting_says_one_line(tmp_path):
    """Gates audit: every `flask --app app …` command printed a 30-line traceback."""
    result = _run(["-m", "flask", "--app", "app", "routes"], tmp_path / "instance",
                  EVENTS_RETENTION_DAYS="abc")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip() == (
        "Error: EVENTS_RETENTION_DAYS='abc': expected a positive integer up to 36500")
