"""What the app imports in production comes from requirements.txt, not from the test tools.

`make run` installs requirements.txt only; the tests run with requirements-dev.txt too, so
a module that only a test tool brings along (gunicorn's gevent worker needs `packaging`,
which gunicorn does not declare; pytest happens to bring it) would pass every test and
break `make run` on a fresh machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]

# The entry points of SPEC §10 and docs/deploy.md: python app.py, gunicorn wsgi:app with
# serving.Worker, python -m gatebridge (and its simulator), flask --app app (cli).
# What the interpreter loaded before (setuptools' distutils hook, from a .pth file) is not
# the app's doing.
LOADED = """
import json, sys
from importlib import metadata
before = set(sys.modules)
import app, wsgi, serving, cli, gatebridge.__main__, gatebridge.simulator
owners = metadata.packages_distributions()
names = {n.split(".")[0] for n in set(sys.modules) - before}
print(json.dumps(sorted({d for n in names for d in owners.get(n, [])})))
"""
# Imported when present, not needed: qrcode loads Pillow if it is installed (the tests
# install it to read PNG icons); Propusk draws its QR codes as SVG.
OPTIONAL = {"pillow"}


def _installed_by(requirements: Path) -> set[str]:
    """The distributions listed in the file and everything they require, transitively."""
    wanted = [Requirement(line).name for line in requirements.read_text().splitlines()
              if line.strip() and not line.startswith(("#", "-r"))]
    seen: set[str] = set()
    while wanted:
        name = canonicalize_name(wanted.pop())
        if name in seen:
            continue
        seen.add(name)
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                wanted.append(requirement.name)
    return seen


def test_every_module_the_entry_points_load_is_installed_by_requirements_txt(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", LOADED], cwd=ROOT, check=True, capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "INSTANCE_PATH": str(tmp_path / "instance")},
    ).stdout
    loaded = {canonicalize_name(name) for name in json.loads(out.strip().splitlines()[-1])}
    assert "gunicorn" in loaded and "flask" in loaded  # the probe saw the app's imports
    missing = loaded - _installed_by(ROOT / "requirements.txt") - OPTIONAL
    assert not missing, f"add to requirements.txt (pinned): {sorted(missing)}"
