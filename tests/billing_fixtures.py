"""Shared billing test setup: a kindergarten with tariffs, a resident, the sandbox wired to WSGI."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from domain import billing, territories
from domain.territories import Membership

CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def kindergarten(manager, name="Детский сад «Тест»", kind="kindergarten"):
    """A territory with the seed's tariffs: «Родители группы 1»: 3 мес. 85,00 ₽, 1 год 300,00 ₽."""
    territory = territories.create_territory(manager, name=name, kind=kind)
    tariff = billing.add_tariff(territory, "Родители группы 1")
    billing.add_period(territory, tariff.id, 3, 8500)
    billing.add_period(territory, tariff.id, 12, 30000)
    return territory


def join(account, territory, role="resident"):
    return Membership.create(account=account, territory=territory, role=role)


def wire_sandbox(app):
    """Deliver the sandbox bank's webhooks through WSGI (the test client has no socket).

    Same route, same JSON, same signature header as the HTTP delivery in production.
    """
    calls = []

    def deliver(url, body, headers):
        response = app.test_client().post(urlsplit(url).path, data=body, headers=headers)
        calls.append((url, body, response.status_code))
        return response.status_code

    app.extensions["payments"].deliver = deliver
    return calls


def token(client, path):
    html = client.get(path).get_data(as_text=True)
    match = CSRF.search(html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)
