"""NUL characters never reach the database (PostgreSQL refuses them in text)."""

from __future__ import annotations

from flask import request


def test_query_and_form_values_lose_their_nul_characters(app):
    with app.test_request_context("/?plate=%00A777AA77%00&x%00=1", method="POST",
                                  data={"surname": "Ива\x00нов", "tags": ["a\x00", "b"]}):
        assert request.args["plate"] == "A777AA77"
        assert request.args["x"] == "1"
        assert request.form["surname"] == "Иванов"
        assert request.form.getlist("tags") == ["a", "b"]
        assert request.values["surname"] == "Иванов"


def test_a_nul_in_the_login_form_is_an_ordinary_wrong_login(client):
    from tests.conftest import csrf_token

    response = client.post("/login", data={"login": "+7999\x000001122", "password": "x\x00y",
                                           "csrf_token": csrf_token(client)})
    assert response.status_code == 422
