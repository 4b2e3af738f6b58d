"""Accounts, their signed-in devices (server-side sessions) and passwords."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import secrets
from pathlib import Path

import gevent
from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from peewee import BooleanField, CharField, ForeignKeyField, IntegerField

from domain.db import BaseModel, UtcDateTimeField, db, for_update, hold, utcnow, writing
from domain.errors import DomainError
from domain.prepared import Prepared, Slot
from domain.text import in_quotes

MAX_DEVICES = 10
SESSION_LIFETIME = dt.timedelta(days=365)
# last_seen is a hint for "least recently used", not an audit log: write it at most this often.
TOUCH_EVERY = dt.timedelta(minutes=1)
MIN_PASSWORD = 8
MAX_PASSWORD = 128
DELETION_GRACE = dt.timedelta(days=30)

# argon2id parameters by name (PASSWORD_HASHING). "standard" is the library's current
# recommendation (RFC 9106's low-memory profile: 64 MiB, 3 passes, ~0.15 s a hash here).
# "cheapest-for-tests" is argon2's own minimum, for test runs that create and sign in
# hundreds of people; a hash made with it is upgraded at its next sign-in under "standard".
HASHING = {"standard": profiles.RFC_9106_LOW_MEMORY, "cheapest-for-tests": profiles.CHEAPEST}

_hasher = PasswordHasher.from_parameters(HASHING["standard"])
log = logging.getLogger(__name__)


def use_hashing(name: str) -> None:
    """Hash new passwords with the named parameters (see HASHING)."""
    global _hasher
    if name not in HASHING:
        raise ValueError(f"PASSWORD_HASHING must be one of {', '.join(HASHING)}, not {name!r}")
    _hasher = PasswordHasher.from_parameters(HASHING[name])
    _dummy_hash.cache_clear()
    if HASHING[name] != HASHING["standard"]:
        log.warning("PASSWORD_HASHING=%s: weak parameters, fit for tests only", name)


class Account(BaseModel):
    """A person who signed up, by phone or by e-mail."""

    phone = CharField(null=True, unique=True)
    email = CharField(null=True, unique=True)
    surname = CharField(default="")
    name = CharField(default="")
    patronymic = CharField(default="")
    password_hash = CharField(null=True)
    is_admin = BooleanField(default=False)
    blocked = BooleanField(default=False)
    email_confirmed = BooleanField(default=False)
    created_at = UtcDateTimeField(default=utcnow)
    deletion_due_at = UtcDateTimeField(null=True)
    locale = CharField(null=True)
    # The territory last chosen on any device: where a new sign-in starts (the device's own
    # choice, Device.territory_id, comes first). Checked against the memberships on use.
    territory_id = IntegerField(null=True)

    # Flask-Login's protocol; the session id is the device token, never the account id,
    # so signing a device out makes a copied cookie worthless.
    device_token: str | None = None
    is_active = True
    is_anonymous = False
    is_authenticated = True

    def get_id(self) -> str | None:
        """The token of the device this account object was loaded through."""
        return self.device_token

    @property
    def full_name(self) -> str:
        """Surname, name and patronymic as one line."""
        return " ".join(p for p in (self.surname, self.name, self.patronymic) if p)

    @property
    def login(self) -> str:
        """What the person signs in with: the phone, else the e-mail."""
        return self.phone or self.email or ""

    @property
    def shown_name(self) -> str:
        """How pages name the person: the full name, else the phone written as people write
        it (+7 (999) 888-77-66), else the e-mail."""
        from domain.phones import format_phone

        return self.full_name or (format_phone(self.phone) if self.phone else self.email or "")


class Device(BaseModel):
    """One signed-in browser or phone; the session cookie only carries its token."""

    account = ForeignKeyField(Account, backref="devices", on_delete="CASCADE")
    token_hash = CharField(unique=True)
    label = CharField(default="")
    ip = CharField(null=True)
    created_at = UtcDateTimeField(default=utcnow)
    last_seen_at = UtcDateTimeField(default=utcnow, index=True)
    expires_at = UtcDateTimeField()
    # The territory chosen on this device («Выбрать территорию»); checked against the
    # memberships on every use, so a stale id grants nothing.
    territory_id = IntegerField(null=True)

    @classmethod
    def of(cls, account: Account):
        """The account's live devices, most recently used first."""
        return (
            cls.select()
            .where((cls.account == account) & (cls.expires_at > utcnow()))
            .order_by(cls.last_seen_at.desc())
        )


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    """argon2id hash, computed in gevent's thread pool so the event loop keeps serving."""
    return gevent.get_hub().threadpool.apply(_hasher.hash, (password,))


def verify_password(account: Account | None, password: str) -> bool:
    """True when the password matches; spends the same effort when the account is unknown.

    A matching hash made with other parameters than today's (an older library's, or the
    tests' cheapest) is replaced by one made with today's, as argon2's documentation advises.
    """
    stored = account.password_hash if account is not None else None
    # Hash against a dummy when there is nothing to check, so timing does not tell.
    target = stored or _dummy_hash()
    ok = gevent.get_hub().threadpool.apply(_matches, (target, password))
    if not (ok and stored):
        return False
    if _hasher.check_needs_rehash(stored):
        account.password_hash = hash_password(password)
        account.save(only=[Account.password_hash])
    return True


def _matches(stored: str, password: str) -> bool:
    """argon2's verdict, run in a worker thread. A wrong password is an answer, not an error:
    gevent's thread pool prints every exception its tasks raise to stderr, a line per wrong
    password in the server's log."""
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_hex(8))


@functools.cache
def _weak_words() -> frozenset[str]:
    path = Path(__file__).with_name("data") / "weak_passwords.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(w.strip() for w in lines if w.strip() and not w.startswith("#"))


def is_common_password(password: str, personal: tuple[str, ...] = ()) -> bool:
    """True for passwords built from a common word, one repeated letter, or the person's own
    phone or e-mail name ("Password2024", "qwerty123", "aaaa1111", "ivanov1990")."""
    letters = "".join(c for c in password.lower() if c.isalpha())
    if len(set(letters)) <= 1 or letters in _weak_words():
        return True
    lowered = password.lower()
    digits = "".join(c for c in password if c.isdigit())
    for item in personal:
        item = (item or "").lower()
        if "@" in item:
            name = item.split("@", 1)[0]
            if len(name) >= 4 and name in lowered:
                return True
        elif item.startswith("+") and len(item) >= 8 and item[-7:] in digits:
            return True
    return False


def check_password_rules(
    password: str, field: str = "password", personal: tuple[str, ...] = ()
) -> None:
    """At least 8 characters with letters and digits (the rule shown on every password form),
    and not one of the common patterns."""
    if len(password) < MIN_PASSWORD:
        raise DomainError(_l("Пароль должен быть не короче 8 символов"), field)
    if len(password) > MAX_PASSWORD:
        raise DomainError(_l("Пароль должен быть не длиннее 128 символов"), field)
    if not any(c.isalpha() for c in password) or not any(c.isdigit() for c in password):
        raise DomainError(_l("Пароль должен содержать буквы и цифры"), field)
    if is_common_password(password, personal):
        raise DomainError(_l("Этот пароль слишком простой: его легко угадать"), field)


def create_account(
    *,
    password: str,
    phone: str | None = None,
    email: str | None = None,
    surname: str = "",
    name: str = "",
    patronymic: str = "",
    is_admin: bool = False,
    email_confirmed: bool = False,
) -> Account:
    """Create an account with a checked, hashed password."""
    check_password_rules(password)
    password_hash = hash_password(password)
    email = email.strip().lower() if email else None
    with db.atomic():
        if phone and Account.select().where(Account.phone == phone).exists():
            raise DomainError(_l("Этот телефон уже зарегистрирован"), "phone")
        if email and Account.select().where(Account.email == email).exists():
            raise DomainError(_l("Этот e-mail уже зарегистрирован"), "email")
        return Account.create(
            phone=phone,
            email=email,
            surname=surname,
            name=name,
            patronymic=patronymic,
            password_hash=password_hash,
            is_admin=is_admin,
            email_confirmed=email_confirmed,
        )


def find_by_login(login: str) -> Account | None:
    """The account whose phone (E.164) or e-mail is `login`."""
    login = login.strip()
    if "@" in login:
        return Account.get_or_none(Account.email == login.lower())
    return Account.get_or_none(Account.phone == login)


def sign_in(account: Account, label: str, ip: str | None) -> str:
    """Open a device session and return its token; the 11th device pushes out the least used."""
    if account.blocked:
        raise DomainError(_l("Аккаунт заблокирован"))
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with writing():
        # The account's row is held, and read again: a password changed, or the account
        # blocked, since it was checked signs nobody in (a sign-in with the old password
        # racing «Сменить пароль» kept its session), and sign-ins at once trim the devices
        # one after another (they pushed each other out under the limit: concurrency audit,
        # stop 24).
        now_held = for_update(Account.select(Account.password_hash, Account.blocked)
                              .where(Account.id == account.id)).first()
        if now_held is None or now_held.blocked:
            raise DomainError(_l("Аккаунт заблокирован"))
        if now_held.password_hash != account.password_hash:
            raise DomainError(_l("Неверный логин или пароль"))
        Device.delete().where((Device.account == account) & (Device.expires_at <= now)).execute()
        Device.create(
            account=account,
            token_hash=token_digest(token),
            label=label[:200],
            ip=ip,
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
        keep = Device.select(Device.id).where(Device.account == account)
        keep = keep.order_by(Device.last_seen_at.desc(), Device.id.desc()).limit(MAX_DEVICES)
        Device.delete().where(
            (Device.account == account) & Device.id.not_in([d.id for d in keep])
        ).execute()
    return token


# Every signed-in request asks this (Flask-Login's user loader): composed once, re-bound.
# Of the device, what its callers read: id, last use, the territory chosen on it.
_LIVE_DEVICE = Prepared(lambda: (
    Device.select(Device.id, Device.last_seen_at, Device.territory_id, Account)
    .join(Account)
    .where((Device.token_hash == Slot("token_hash")) & (Device.expires_at > Slot("now")))
    .limit(1)
))


def device_for_token(token: str | None) -> Device | None:
    """The live device behind a session token, with its account; None when signed out."""
    if not token:
        return None
    now = utcnow()
    return live_device(_LIVE_DEVICE.first(token_hash=token_digest(token), now=now), token, now)


def live_device(device: Device | None, token: str, now: dt.datetime) -> Device | None:
    """A device row found by its token's digest, if its account may still sign in (its last
    use recorded now and then); None otherwise."""
    if device is None or device.account.blocked:
        return None
    if now - device.last_seen_at > TOUCH_EVERY:
        Device.update(last_seen_at=now).where(Device.id == device.id).execute()
        device.last_seen_at = now
    device.account.device_token = token
    return device


def sign_out(token: str | None) -> None:
    """End the session of this token for good."""
    if token:
        Device.delete().where(Device.token_hash == token_digest(token)).execute()


def sign_out_device(account: Account, device_id: int) -> bool:
    """Sign out one of the account's own devices; False when it is not theirs."""
    query = Device.delete().where((Device.id == device_id) & (Device.account == account))
    return query.execute() > 0


def sign_out_others(account: Account, keep_token: str | None) -> int:
    """Sign out every device of the account but the current one; returns how many."""
    query = Device.delete().where(Device.account == account)
    if keep_token:
        query = query.where(Device.token_hash != token_digest(keep_token))
    return query.execute()


def authenticate(login: str, password: str, ip: str | None = None) -> Account:
    """The account a phone-or-e-mail and password belong to; one vague error otherwise.

    Ten wrong passwords for one login, or fifty from one address, within 15 minutes pause
    further tries (the counters are in the database, shared by every web process).
    """
    from domain import limits
    from domain.phones import parse_phone

    login = (login or "").strip()
    key = login.lower()
    if "@" not in login:
        try:
            key = parse_phone(login)
        except DomainError:
            key = ""
    # Each try is counted before the password is checked (limits.take), then given back
    # when it was right.
    by_login = limits.take(limits.LOGIN, key)
    by_address = limits.take(limits.LOGIN_IP, ip) if by_login is not None else None
    if by_address is None:
        limits.give_back(by_login)
        raise DomainError(_l("Слишком много попыток входа. Попробуйте через 15 минут"))
    account = find_by_login(key) if key else None
    # Never say which half was wrong: that would tell who is registered.
    if not verify_password(account, password or ""):
        raise DomainError(_l("Неверный логин или пароль"))
    limits.clear(limits.LOGIN, key)
    limits.give_back(by_address)
    if account.blocked:
        raise DomainError(_l("Аккаунт заблокирован"))
    return account


# ---------------------------------------------------------------------------------------
# Sign-up, recovery, profile changes and deletion. Each is one operation; the codes they
# rest on live in domain.codes. Nothing here tells a stranger whether a phone or an
# e-mail is registered: the same screens and the same sends happen either way.
# ---------------------------------------------------------------------------------------


def _telephony_send(channel: str, phone: str, code: str) -> None:
    import providers

    if channel == "call":
        providers.telephony().flash_call(phone, code)
    else:
        text = str(_l("Пропуск: код подтверждения %(code)s. Никому его не сообщайте.", code=code))
        providers.telephony().sms(phone, text, code=code)


def _mail(code, to: str, subject: str, text: str, link: str | None = None) -> None:
    """Send the e-mail that carries `code`; when the mail server cannot take it, withdraw
    the code (its resend countdown must not hold back a retry of a letter that never left)
    and say so at the e-mail field."""
    import providers

    try:
        providers.mailer().send(to, str(subject), str(text), link=link)
    except providers.MailError as error:
        log.warning("mail for code %s not sent: %s", code.id, error)
        code.delete_instance()
        raise DomainError(
            _l("Не удалось отправить письмо. Попробуйте ещё раз через несколько минут"), "email"
        ) from None


def parse_email(text: str, field: str = "email") -> str:
    """A typed e-mail address checked for shape (no DNS) and lower-cased."""
    from email_validator import EmailNotValidError, validate_email

    raw = (text or "").strip()
    if not raw:
        raise DomainError(_l("Введите e-mail"), field)
    try:
        checked = validate_email(raw, check_deliverability=False)
    except EmailNotValidError:
        raise DomainError(_l("Неверный e-mail"), field) from None
    return checked.normalized.lower()


def find_by_phone(phone: str) -> Account | None:
    """The account with this E.164 phone."""
    return Account.get_or_none(Account.phone == phone)


def find_by_email(email: str) -> Account | None:
    """The account with this e-mail (compared in lower case)."""
    return Account.get_or_none(Account.email == email.strip().lower())


def start_phone_verification(purpose: str, phone: str, ip: str | None, channel: str = "call"):
    """Send a code to `phone` for sign-up or recovery; returns the code row.

    Sign-up always sends (a registered phone simply gets its password reset once the code
    is proven). Recovery of an unknown phone records a code that is never sent, so the
    screen, the countdown and the caps are the same as for a known one.
    """
    from domain import codes

    deliver = purpose == codes.SIGNUP or find_by_phone(phone) is not None
    code, secret = codes.issue(purpose, phone, channel, ip=ip, deliver=deliver)
    if deliver:
        _telephony_send(channel, phone, secret)
    return code


def resend_code(purpose: str, code_id: int | None, channel: str, ip: str | None):
    """A fresh code to the same phone by call or SMS, once the countdown has run out."""
    from domain import codes

    old = codes.Code.get_or_none((codes.Code.id == code_id) & (codes.Code.purpose == purpose))
    if old is None or channel not in ("call", "sms"):
        raise DomainError(_l("Начните заново."))
    if old.resend_in() > 0:
        raise DomainError(_l("Новый код можно запросить через %(s)s с", s=old.resend_in()))
    if purpose in (codes.SIGNUP, codes.RECOVERY):
        return start_phone_verification(purpose, old.target, ip, channel)
    code, secret = codes.issue(
        purpose, old.target, channel, ip=ip, account=old.account, payload=old.data
    )
    _telephony_send(channel, old.target, secret)
    return code


def _claiming(login: str) -> None:
    """Inside the transaction that gives a phone or an e-mail to an account: one such
    transaction per address at a time (PostgreSQL), so that its «not taken yet» check holds
    until it commits. Two accounts claiming one address at once answered 500 from the
    unique index (concurrency audit, stop 24)."""
    hold("login:" + login.lower())


def set_password_by_code(purpose: str, code_id: int | None, password: str) -> Account:
    """Finish a phone sign-up or recovery: create the account or give it the new password.

    Every device of an existing account is signed out: whoever knew the old password
    is out.
    """
    from domain import codes

    code = codes.verified(code_id, purpose)
    check_password_rules(password, personal=(code.target,))
    password_hash = hash_password(password)
    with db.atomic():
        _claiming(code.target)
        codes.consume(code)
        account = find_by_phone(code.target)
        if account is None:
            if purpose != codes.SIGNUP:
                raise DomainError(_l("Подтверждение устарело. Начните заново."))
            return Account.create(phone=code.target, password_hash=password_hash)
        if account.blocked:
            raise DomainError(_l("Аккаунт заблокирован"))
        account.password_hash = password_hash
        account.save(only=[Account.password_hash])
        Device.delete().where(Device.account == account).execute()
    return account


def split_full_name(full: str) -> tuple[str, str, str]:
    """«Фамилия Имя Отчество» typed in one field → (surname, name, patronymic)."""
    parts = (full or "").split()
    if len(parts) == 1:
        return "", parts[0], ""
    if not parts:
        return "", "", ""
    return parts[0], parts[1], " ".join(parts[2:])


def start_email_signup(
    *, full_name: str, phone: str, email: str, password: str, ip: str | None, link_for,
    locale: str | None = None,
) -> None:
    """Sign-up by e-mail: check the password, then mail a link; the account is made on click.

    A registered address gets a note with a recovery link instead, so the answer on screen
    is the same either way. `link_for(purpose, token)` builds the absolute URL. `locale`,
    the language chosen while signing up, becomes the account's (the link may well be
    opened in another browser, the mail app's).
    """
    from domain import codes

    email = email.strip().lower()
    check_password_rules(password, personal=(phone, email))
    password_hash = hash_password(password)
    owner = find_by_email(email)
    if owner is not None:
        code, token = codes.issue(codes.EMAIL_RECOVERY, email, "email", ip=ip)
        link = link_for(codes.EMAIL_RECOVERY, token)
        # Written to the address's owner, who may not be the one signing up: in their language.
        with force_locale(owner.locale if owner.locale in ("ru", "en") else "ru"):
            _mail(code, email, _l("Пропуск: вы уже зарегистрированы"),
                  _l("Кто-то (возможно, вы) пытался зарегистрироваться с этим адресом. Аккаунт "
                     "уже есть. Если вы забыли пароль, задайте новый по ссылке (действует "
                     "сутки):"), link)
        return
    surname, name, patronymic = split_full_name(full_name)
    payload = {"surname": surname, "name": name, "patronymic": patronymic, "phone": phone,
               "password_hash": password_hash, "locale": locale}
    code, token = codes.issue(codes.EMAIL_SIGNUP, email, "email", ip=ip, payload=payload)
    _mail(code, email, _l("Пропуск: подтвердите e-mail"),
          _l("Чтобы закончить регистрацию, откройте ссылку (действует сутки):"),
          link_for(codes.EMAIL_SIGNUP, token))


def confirm_email_signup(token: str) -> tuple[Account, str | None]:
    """The link of an e-mail sign-up was opened: create the account, e-mail confirmed.

    Returns the account and the phone given at sign-up, which the account does not hold yet:
    nobody has proven it. Kept at once, it let a stranger sign up by e-mail with someone
    else's number; the number's owner, signing up by phone later, then landed in that
    account (the code matched its phone) and the stranger took it back by e-mail recovery,
    with everything the owner had done in it. The caller sends the phone a code
    (start_phone_change); the account takes the phone when the code comes back. A phone
    another account already holds is not returned.
    """
    from domain import codes

    with db.atomic():
        code = codes.by_link(token, codes.EMAIL_SIGNUP)
        _claiming(code.target)
        codes.consume(code)
        data = code.data
        if find_by_email(code.target) is not None:
            raise DomainError(_l("Этот e-mail уже подтверждён. Войдите."))
        phone = data.get("phone") or None
        if phone and find_by_phone(phone) is not None:
            phone = None
        account = Account.create(
            email=code.target, phone=None, surname=data.get("surname", ""),
            name=data.get("name", ""), patronymic=data.get("patronymic", ""),
            password_hash=data["password_hash"], email_confirmed=True,
            locale=data.get("locale"),
        )
    return account, phone


def start_email_recovery(email: str, ip: str | None, link_for) -> None:
    """Mail a link to set a new password; an unknown address gets nothing, same answer."""
    from domain import codes

    email = email.strip().lower()
    account = find_by_email(email)
    code, token = codes.issue(
        codes.EMAIL_RECOVERY, email, "email", ip=ip, account=account, deliver=account is not None
    )
    if account is not None:
        _mail(code, email, _l("Пропуск: восстановление пароля"),
              _l("Чтобы задать новый пароль, откройте ссылку (действует сутки). Если вы не "
                 "просили восстановление, ничего не делайте."),
              link_for(codes.EMAIL_RECOVERY, token))


def check_recovery_link(token: str) -> None:
    """Raise unless the recovery link is live (shown before the password form)."""
    from domain import codes

    codes.by_link(token, codes.EMAIL_RECOVERY)


def set_password_by_link(token: str, password: str) -> Account:
    """Finish an e-mail recovery: new password, e-mail confirmed, every device signed out."""
    from domain import codes

    code = codes.by_link(token, codes.EMAIL_RECOVERY)
    check_password_rules(password, personal=(code.target,))
    password_hash = hash_password(password)
    with db.atomic():
        codes.consume(code)
        account = find_by_email(code.target)
        if account is None or account.blocked:
            raise DomainError(_l("Ссылка недействительна или устарела."))
        account.password_hash = password_hash
        account.email_confirmed = True
        account.save(only=[Account.password_hash, Account.email_confirmed])
        Device.delete().where(Device.account == account).execute()
    return account


def update_profile(
    account: Account, *, surname: str, name: str, patronymic: str, email: str | None = None
) -> None:
    """Change the person's name («Личные данные»); the surname and name are required.

    `email` is what the form's e-mail field holds (None: not asked). It changes only by its
    link (start_email_change), so here an empty one is refused when the account has one:
    saying «Данные сохранены» while the old address stays would be a lie.
    """
    surname, name = " ".join((surname or "").split()), " ".join((name or "").split())
    if not surname:
        raise DomainError(_l("Введите фамилию"), "surname")
    if not name:
        raise DomainError(_l("Введите имя"), "name")
    if email is not None:
        check_email_kept(account, email)
    account.surname, account.name, account.patronymic = (
        surname[:100], name[:100], (patronymic or "").strip()[:100]
    )
    with db.atomic():
        account.save(only=[Account.surname, Account.name, Account.patronymic])


def check_email_kept(account: Account, email: str) -> None:
    """An e-mail changes by its link only (start_email_change), so clearing it in «Личные
    данные» would change nothing: refused while the account has one."""
    if not (email or "").strip() and account.email:
        raise DomainError(
            _l("E-mail нельзя удалить: по нему вы входите. Можно сменить его на другой")
            if not account.phone
            else _l("E-mail нельзя удалить здесь, можно только сменить на другой"),
            "email",
        )


def start_email_change(account: Account, email: str, ip: str | None, link_for) -> bool:
    """Mail a link to the new address; the e-mail changes when it is opened.

    Returns False when the address is the current one (nothing to do).
    """
    from domain import codes

    email = email.strip().lower()
    if email == (account.email or ""):
        return False
    code, token = codes.issue(
        codes.EMAIL_CHANGE, email, "email", ip=ip, account=account, payload={"email": email}
    )
    _mail(code, email, _l("Пропуск: подтвердите новый e-mail"),
          _l("Чтобы сделать этот адрес e-mail вашего аккаунта, откройте ссылку (действует сутки):"),
          link_for(codes.EMAIL_CHANGE, token))
    return True


def confirm_email_change(token: str) -> Account:
    """The link to a new e-mail was opened: the account takes the address."""
    from domain import codes

    with db.atomic():
        code = codes.by_link(token, codes.EMAIL_CHANGE)
        _claiming(code.target)
        codes.consume(code)
        account = Account.get_or_none(Account.id == code.account_id)
        if account is None:
            raise DomainError(_l("Ссылка недействительна или устарела."))
        other = find_by_email(code.target)
        if other is not None and other.id != account.id:
            raise DomainError(_l("Этот e-mail уже зарегистрирован"))
        account.email = code.target
        account.email_confirmed = True
        account.save(only=[Account.email, Account.email_confirmed])
    return account


def start_phone_change(account: Account, phone: str, ip: str | None):
    """Send an SMS code to the new phone; returns the code row."""
    from domain import codes

    if phone == account.phone:
        raise DomainError(_l("Это ваш текущий номер"), "phone")
    code, secret = codes.issue(
        codes.PHONE_CHANGE, phone, "sms", ip=ip, account=account, payload={"phone": phone}
    )
    _telephony_send("sms", phone, secret)
    return code


def confirm_phone_change(account: Account, code_id: int | None, typed: str) -> None:
    """The code sent to the new phone is right: the account takes the phone."""
    from domain import codes

    code = codes.verify(code_id, codes.PHONE_CHANGE, typed)
    with db.atomic():
        if code.account_id != account.id:
            raise DomainError(_l("Код устарел. Запросите новый."), "code")
        _claiming(code.target)
        codes.consume(code)
        other = find_by_phone(code.target)
        if other is not None and other.id != account.id:
            raise DomainError(_l("Этот телефон уже зарегистрирован"), "code")
        account.phone = code.target
        account.save(only=[Account.phone])


def check_current_password(account: Account, password: str) -> None:
    """The account's own password, typed to change something; a DomainError at `current`
    when it is wrong. Each try counts against the account's sign-in tries (limits.LOGIN,
    keyed as the sign-in form keys it), so a borrowed session cannot guess it faster than
    the login page allows.
    """
    from domain import limits

    tried = limits.take(limits.LOGIN, account.phone or (account.email or "").lower())
    if tried is None:
        raise DomainError(_l("Слишком много попыток. Попробуйте через 15 минут"), "current")
    if not verify_password(account, password or ""):
        raise DomainError(_l("Неверный текущий пароль"), "current")
    limits.give_back(tried)


def set_locale(account: Account, code: str) -> None:
    """The language the person chose: their mails, receipts and other devices follow it."""
    if account.locale != code:
        account.locale = code
        with db.atomic():
            account.save(only=[Account.locale])


def change_password(account: Account, current: str, new: str, keep_token: str | None) -> int:
    """Change the password knowing the current one; signs out every other device."""
    check_current_password(account, current)
    check_password_rules(new, "password", personal=(account.phone or "", account.email or ""))
    password_hash = hash_password(new)
    with db.atomic():
        account.password_hash = password_hash
        account.save(only=[Account.password_hash])
        return sign_out_others(account, keep_token)


def start_deletion(account: Account, ip: str | None):
    """«Удалить аккаунт и все доступы»: send the code (SMS, or e-mail when there is no phone)."""
    from domain import codes

    if account.deletion_due_at is not None:
        raise DomainError(_l("Удаление уже запланировано"))
    _check_not_the_last_manager(account)
    if account.phone:
        code, secret = codes.issue(codes.DELETION, account.phone, "sms", ip=ip, account=account)
        _telephony_send("sms", account.phone, secret)
    else:
        code, secret = codes.issue(codes.DELETION, account.email, "email", ip=ip, account=account)
        _mail(code, account.email, _l("Пропуск: код удаления аккаунта"),
              _l("Код для удаления аккаунта: %(code)s", code=secret))
    return code


def _check_not_the_last_manager(account: Account) -> None:
    """A territory with members keeps a manager: the account cannot go while it is one's
    only manager."""
    from domain.territories import left_without_manager

    left = left_without_manager(account)
    if left:
        raise DomainError(_l(
            "Вы единственный управляющий территории %(names)s. Назначьте сначала другого "
            "управляющего", names=", ".join(f"«{in_quotes(t.name)}»" for t in left)))


def confirm_deletion(account: Account, code_id: int | None, typed: str) -> dt.datetime:
    """The code is right: the account will be deleted in 30 days; returns the date."""
    from domain import codes

    code = codes.verify(code_id, codes.DELETION, typed)
    with writing():
        if code.account_id != account.id:
            raise DomainError(_l("Код устарел. Запросите новый."), "code")
        # The territories the account manages are held (in one order) before the check, as a
        # manager's demotion holds its territory: two managers asking at once both went,
        # leaving their territory with none (concurrency audit, stop 24).
        from domain.territories import Membership, Territory

        managed = Membership.select(Membership.territory).where(
            (Membership.account == account) & (Membership.role == "manager"))
        list(for_update(Territory.select(Territory.id).where(Territory.id.in_(managed))
                        .order_by(Territory.id)))
        _check_not_the_last_manager(account)
        codes.consume(code)
        account.deletion_due_at = utcnow() + DELETION_GRACE
        account.save(only=[Account.deletion_due_at])
    return account.deletion_due_at


def cancel_deletion(account: Account) -> None:
    """«Отменить удаление»: the account stays."""
    with db.atomic():
        account.deletion_due_at = None
        account.save(only=[Account.deletion_due_at])


def set_blocked(account: Account, blocked: bool) -> None:
    """Block or unblock an account; a blocked one loses every session at once."""
    with db.atomic():
        account.blocked = blocked
        account.save(only=[Account.blocked])
        from domain import versions

        versions.bump_account(account.id)
        if blocked:
            Device.delete().where(Device.account == account).execute()
            # Nor does a press of theirs the bridge has not taken yet (gates.request_open).
            from domain.gates import drop_presses

            drop_presses(account.id, "account_blocked")


def purge_account(account: Account) -> None:
    """Remove an account and everything that is the person's, for good.

    This is THE one place where account data is removed. Rows of other areas go by their
    foreign keys: every model that belongs to a person references Account with
    on_delete="CASCADE" (devices, codes, memberships, join requests, cards, passes,
    access grants), and SQLite runs with foreign_keys=ON. Codes and send logs kept by
    phone or e-mail (sign-up before an account existed) are deleted by target here.
    Billing tables must NOT cascade: a payment references its payer with
    on_delete="SET NULL" and keeps only amount, date and territory; billing code that
    stores a phone or e-mail on a payment (receipt address) must blank it here, before the
    account row goes, so accounting keeps anonymised records only.
    """
    from domain import billing, codes, versions

    with db.atomic():
        # Nobody will use what a payment still open would buy: cancel it (its promo use goes
        # back). Paid at the bank after all, it is refunded (billing.apply_success, PayerGone).
        billing.cancel_pending_of(account.id)
        codes.forget([account.phone or "", account.email or ""])
        # Accounting keeps amount, date and territory; the payer and the receipt address go.
        billing.Payment.update(email="").where(billing.Payment.account == account).execute()
        # A bridge elsewhere may hold the person's grants in its cache: tell it.
        versions.bump_account(account.id)
        account.delete_instance()


def purge_deleted(now: dt.datetime | None = None) -> int:
    """Purge every account whose 30 days of grace have passed; returns how many."""
    from domain import codes, limits

    now = now or utcnow()
    due = Account.select().where(
        Account.deletion_due_at.is_null(False) & (Account.deletion_due_at <= now)
    )
    from domain.territories import left_without_manager

    count = 0
    for account in list(due):
        left = left_without_manager(account)
        if left:
            # Became the last manager during the month of grace (the other one left): the
            # territory keeps them until someone else manages it; the banner stays.
            log.warning("account %s not purged: the only manager of territories %s",
                        account.id, [t.id for t in left])
            continue
        purge_account(account)
        count += 1
    codes.sweep(now)
    limits.sweep(now)
    return count
