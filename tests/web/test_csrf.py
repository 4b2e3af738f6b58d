"""CSRF on every form and htmx request: every route that takes a POST refuses one without the
session's token, whoever is signed in; only the payment provider's webhook is exempt."""

from __future__ import annotations

import re

import pytest

from app import create_app
from extensions import csrf
from tests.web.territory_kit import person, signed_in

# The provider cannot know our token; the webhook verifies the notification instead
# (tests/web/test_billing_flow.py).
EXEMPT = {"billing.webhook"}


def _posting_rules():
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "DATABASE_URL": "sqlite:///:memory:",
                      "INSTANCE_PATH": "/tmp/propusk-csrf-rules"})
    return sorted((rule.endpoint, rule.rule) for rule in app.url_map.iter_rules()
                  if "POST" in (rule.methods or ()) and rule.endpoint not in EXEMPT)


RULES = _posting_rules()


def test_only_the_webhook_is_exempt(app):
    exempt = {endpoint for endpoint, view in app.view_functions.items()
              if f"{view.__module__}.{view.__name__}" in csrf._exempt_views}
    assert exempt == EXEMPT
    assert len(RULES) >= 40


@pytest.fixture
def admin_client(app):
    """Signed in as a platform admin, whom no route turns away before the token check."""
    with app.test_request_context():
        admin = person("Админ")
        admin.is_admin = True
        admin.save()
    return signed_in(app, admin)


@pytest.mark.parametrize(("endpoint", "rule"), RULES)
def test_a_post_without_the_token_is_refused(admin_client, endpoint, rule):
    url = re.sub(r"<any\(([^,)]+)[^>]*>", r"\1", rule)  # <any(signup, recover):flow>
    url = re.sub(r"<(?:\w+:)?\w+>", "1", url)
    admin_client.get("/")  # the session has a token; the request just does not carry it
    assert admin_client.post(url, data={"x": "1"}).status_code == 400, url
    # Through htmx: a token in the header, but not this session's.
    forged = admin_client.post(url, data={"x": "1"},
                               headers={"HX-Request": "true", "X-CSRFToken": "forged"})
    assert forged.status_code == 400, url
