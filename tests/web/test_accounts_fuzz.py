"""Whatever people type into the account forms: never a 500, never a lost field."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape

from tests.conftest import csrf_token

# Printable text of any script, plus the shapes people really type and the usual traps.
junk = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=60),
    st.sampled_from(["", " ", "8 (999) 000-11-22", "+7 999 000-11-22", "9990001122", "+",
                     "++79990001122", "7" * 40, "０１２３", "<script>", "a@b", "@", "a@b.c",
                     "Иван@почта.рф", "x" * 300, "12 34", "１２３４", "' OR 1=1 --"]),
)
FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def _kept(body: str, value: str) -> bool:
    """The value is back in the page as typed (escaped), or the field had no room for it."""
    value = value.strip()
    return not value or str(escape(value)) in body or len(value) > 40


@FUZZ
@given(phone=junk)
def test_phone_signup_form(client, phone):
    token = csrf_token(client, "/signup")
    response = client.post("/signup", data={"phone": phone, "consent": "y", "csrf_token": token})
    assert response.status_code in (302, 422)
    if response.status_code == 422:
        assert _kept(response.get_data(as_text=True), phone)


@FUZZ
@given(name=junk, phone=junk, email=junk, password=junk)
def test_email_signup_form(client, name, phone, email, password):
    token = csrf_token(client, "/signup/email")
    data = {"full_name": name, "phone": phone, "email": email, "password": password,
            "confirm": password, "consent": "y", "csrf_token": token}
    response = client.post("/signup/email", data=data)
    assert response.status_code in (200, 422)
    if response.status_code == 422:
        body = response.get_data(as_text=True)
        for value in (name, phone, email):
            assert _kept(body, value)


@FUZZ
@given(code=junk)
def test_code_form(client, code):
    token = csrf_token(client, "/signup")
    client.post("/signup", data={"phone": "+79990001122", "consent": "y", "csrf_token": token})
    response = client.post("/signup/code", data={"code": code,
                                                 "csrf_token": csrf_token(client, "/signup/code")})
    assert response.status_code in (302, 422)


@FUZZ
@given(password=junk, confirm=junk)
def test_recovery_link_password_form_with_a_bad_token(client, password, confirm):
    response = client.post("/recover/email/not-a-token",
                           data={"password": password, "confirm": confirm,
                                 "csrf_token": csrf_token(client, "/login")})
    assert response.status_code == 410


@FUZZ
@given(login=junk, password=junk)
def test_login_form(client, login, password):
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"login": login, "password": password,
                                           "csrf_token": token})
    assert response.status_code == 422
    assert _kept(response.get_data(as_text=True), login)


@FUZZ
@given(email=junk)
def test_recovery_email_form(client, email):
    token = csrf_token(client, "/recover/email")
    response = client.post("/recover/email", data={"email": email, "csrf_token": token})
    assert response.status_code in (200, 422)
    if response.status_code == 422:
        assert _kept(response.get_data(as_text=True), email)
