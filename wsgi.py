"""The WSGI entry for several web processes: `gunicorn -k serving.Worker -w N wsgi:app`.

Web workers serve pages only: the gatebridge runs once, as `python -m gatebridge` beside
them (docs/deploy.md). Everything the workers share — sessions (Device rows), rate limits
(SendLog), access versions (TerritoryVersion), gate commands and the live feed — lives in
the database, so any worker may answer any request.
"""

# Sockets, threads and time must be cooperative before anything else imports them
# (gunicorn's gevent worker patches too; patching first keeps `--preload` safe as well).
from gevent import monkey

monkey.patch_all()

from app import create_app, settle_memory  # noqa: E402

app = create_app({"GATEBRIDGE": False})

# Start-up's objects leave the garbage collector's sight, as in `python app.py`.
settle_memory()
