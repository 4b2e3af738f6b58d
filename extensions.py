"""Flask extensions, created unbound here and bound to an app in create_app().

Flask-Babel's lives in blueprints/i18n.py, with the lookup it is given there."""

from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx

csrf = CSRFProtect()
login_manager = LoginManager()
htmx = Htmx()
