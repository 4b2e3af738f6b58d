"""CSRF on every form and htmx request: every route that takes a POST refuses one without the
session's token, whoever is signed in; only the payment provider's webhook is exempt."""

from __future__ import annotations

import re

from extensions import csrf
from tests.web.territory_kit import person, signed_in

# The provider cannot know our token; the webhook verifies the notification instead
# (tests/web/test_billing_flow.py).
EXEMPT = {"billing.webhook"}


def test_only_the_webhook_is_exempt(app):
    exempt = {endpoint for endpoint, view in app.view_functions.items()
              if f"{view.__module__}.{view.__name__}" in csrf._exempt_views}
    assert exempt == EXEMPT


def test_a_post_without_the_token_is_refused_everywhere(app):
    """One app for all the routes (a new one per route cost more than the checks)."""
    with app.test_request_context():
        admin = person("Админ")  # a platform admin: no route turns them away before the check
        admin.is_admin = True
        admin.save()
    client = signed_in(app, admin)
    client.get("/")  # the session has a token; the requests just do not carry it
    rules = [rule.rule for rule in app.url_map.iter_rules()
             if "POST" in (rule.methods or ()) and rule.endpoint not in EXEMPT]
    assert len(rules) >= 40
    let_through = []
    for rule in rules:
        url = re.sub(r"<any\(([^,)]+)[^>]*>", r"\1", rule)  # <any(signup, recover):flow>
        url = re.sub(r"<(?:\w+:)?\w+>", "1", url)
        plain = client.post(url, data={"x": "1"})
        # Through htmx: a token in the header, but not this session's.
        forged = client.post(url, data={"x": "1"},
                             headers={"HX-Request": "true", "X-CSRFToken": "forged"})
        # Refused by the token check itself, not by the view for some other reason.
        let_through += [(url, r.status_code) for r in (plain, forged)
                        if r.status_code != 400 or "Форма устарела" not in r.get_data(as_text=True)]
    assert not let_through, let_through
