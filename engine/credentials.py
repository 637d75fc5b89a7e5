"""Who is calling: passwords, API tokens for machine clients, and private calendar-feed tokens.

* Passwords are argon2id hashes (:mod:`engine.passwords`). A login is refused without even
  checking the password once an account or an address has had ``login_rate_limit_per_minute``
  failures in the last minute; every attempt is recorded. An unknown login costs the same
  argon2 verification as a known one, so timing does not reveal which logins exist.
* API tokens are random secrets shown once (``agt_`` + 43 URL-safe characters); only their
  SHA-256 is stored, so a database leak does not leak working tokens. A token acts as its own
  identity (``api:<name>``) with the roles and the organisation it was scoped to.
* A calendar token makes the private iCalendar URL; it is stored hashed the same way and a
  new one replaces (revokes) the old.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING

from .directory import Actor, Role, User
from .errors import BadInput, NotAuthenticated, NotFound, NotPermitted, TooManyAttempts
from .passwords import Passwords
from .records import ApiToken, AuditEntry

if TYPE_CHECKING:
    from .engine import Engine

TOKEN_PREFIX = "agt_"  # noqa: S105 - a public prefix that marks our tokens, not a secret
CALENDAR_PREFIX = "agc_"
TOKEN_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,59}$")
LOGIN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 10
RATE_WINDOW = timedelta(minutes=1)
LAST_USED_RESOLUTION = timedelta(minutes=1)
_DUMMY_HASH: dict[tuple[int, int, int], str] = {}


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def passwords_of(engine: Engine) -> Passwords:
    s = engine.settings
    return Passwords(s.argon2_time_cost, s.argon2_memory_kib, s.argon2_parallelism)


def _dummy_hash(passwords: Passwords, key: tuple[int, int, int]) -> str:
    if key not in _DUMMY_HASH:
        _DUMMY_HASH[key] = passwords.hash(secrets.token_hex(16))
    return _DUMMY_HASH[key]


def check_password_policy(password: str, login: str, field: str = "new_password") -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise BadInput(f"the password must have at least {MIN_PASSWORD} characters", field=field)
    if len(password) > 256:
        raise BadInput("the password must have at most 256 characters", field=field)
    if password.strip().lower() == login.lower() or login.lower() in password.lower():
        raise BadInput("the password must not contain the login", field=field)
    if len(set(password)) < 4:
        raise BadInput("the password is too simple: use at least 4 different characters", field=field)


def authenticate(engine: Engine, login: str, password: str, ip: str) -> Actor:
    """Check a login and password; record the attempt; refuse when rate-limited."""
    settings = engine.settings
    login = (login or "").strip().lower()[:64]
    now = engine.clock.now()
    with engine.store.transaction() as tx:
        failures = tx.login_failures(login, ip, now - RATE_WINDOW)
        user = tx.get_user(login) if login else None
    if failures >= settings.login_rate_limit_per_minute:
        with engine.store.transaction() as tx:
            tx.record_login(login, ip, now, False)
        raise TooManyAttempts(int(RATE_WINDOW.total_seconds()))
    passwords = passwords_of(engine)
    key = (settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism)
    stored = user.password_hash if user is not None and user.active else None
    ok = passwords.verify(stored or _dummy_hash(passwords, key), password or "") and stored is not None
    with engine.store.transaction() as tx:
        tx.record_login(login, ip, now, ok)
        if ok and user is not None and stored is not None and passwords.needs_rehash(stored):
            tx.save_user(replace(user, password_hash=passwords.hash(password)))
    if not ok or user is None:
        raise NotAuthenticated()
    return Actor.of(user)


def change_password(engine: Engine, actor: Actor, old: str, new: str) -> None:
    """A user changes their own password, proving the old one."""
    passwords = passwords_of(engine)
    with engine.store.transaction() as tx:
        user = tx.get_user(actor.login)
    if user is None or not user.active:
        raise NotFound("user", actor.login)
    if not passwords.verify(user.password_hash, old or ""):
        raise BadInput("the current password is wrong", field="old_password")
    check_password_policy(new, actor.login)
    if new == old:
        raise BadInput("the new password must differ from the current one", field="new_password")
    hashed = passwords.hash(new)
    now = engine.clock.now()
    with engine.store.transaction() as tx:
        tx.save_user(replace(user, password_hash=hashed))
        tx.append_audit([AuditEntry(now, actor.login, actor.organisation, "user.password_changed")])


@dataclass(frozen=True)
class UserChange:
    """What an administrator sets on a user; None leaves a field as it is."""

    login: str
    name: str | None = None
    organisation: str | None = None
    roles: tuple[str, ...] | None = None
    email: str | None = None
    active: bool | None = None
    password: str | None = None


def save_user(engine: Engine, actor: Actor, change: UserChange) -> User:
    """Create or update a user (administrators only), audited without the password."""
    if not actor.is_admin:
        raise NotPermitted(actor.login, "manage", "users", "administrators manage users")
    login = (change.login or "").strip().lower()
    if not LOGIN.match(login):
        raise BadInput("a login is 2-64 lower-case letters, digits, '.', '_' or '-'", field="login")
    if change.roles is not None:
        _check_roles(change.roles)
    if change.password is not None:
        check_password_policy(change.password, login, field="password")
    hashed = passwords_of(engine).hash(change.password) if change.password is not None else None
    now = engine.clock.now()
    with engine.store.transaction() as tx:
        existing = tx.get_user(login)
        if existing is None:
            missing = [f for f in ("name", "organisation", "roles") if getattr(change, f) in (None, "", ())]
            if missing:
                raise BadInput(f"a new user needs {', '.join(missing)}", field=missing[0])
        organisation = change.organisation if change.organisation is not None else existing and existing.organisation
        if not organisation or tx.get_organisation(organisation) is None:
            raise BadInput(f"organisation {organisation!r} does not exist", field="organisation")
        if change.name is not None and not change.name.strip():
            raise BadInput("the name must not be empty", field="name")
        if existing is not None and login == actor.login and change.active is False:
            raise BadInput("you cannot deactivate yourself", field="active")
        user = User(
            login=login,
            name=(change.name if change.name is not None else existing.name if existing else "").strip(),
            organisation=organisation,
            roles=frozenset(change.roles) if change.roles is not None else existing.roles if existing else frozenset(),
            password_hash=hashed if hashed is not None else existing.password_hash if existing else None,
            active=change.active if change.active is not None else existing.active if existing else True,
            email=change.email if change.email is not None else existing.email if existing else None,
        )
        tx.save_user(user)
        fields = sorted(k for k, v in vars(change).items() if v is not None and k not in ("login", "password"))
        details = {"login": login, "created": existing is None, "fields": fields, "password_set": hashed is not None}
        tx.append_audit([AuditEntry(now, actor.login, actor.organisation, "user.saved", details=details)])
        return user


def _check_roles(roles: tuple[str, ...]) -> None:
    known = {r.value for r in Role}
    if not roles:
        raise BadInput("at least one role is needed", field="roles")
    unknown = sorted(set(roles) - known)
    if unknown:
        raise BadInput(f"unknown role(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}", field="roles")


# -- API tokens -----------------------------------------------------------------------------------


def create_token(
    engine: Engine, actor: Actor, name: str, roles: tuple[str, ...], organisation: str
) -> tuple[ApiToken, str]:
    """Create a token; return it with its secret, which is never shown again."""
    if not actor.is_admin:
        raise NotPermitted(actor.login, "create", "API tokens", "administrators manage API tokens")
    name = (name or "").strip().lower()
    if not TOKEN_NAME.match(name):
        raise BadInput("a token name is 1-60 lower-case letters, digits, '.', '_' or '-'", field="name")
    _check_roles(roles)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = engine.clock.now()
    token = ApiToken(
        id=engine._new_id(),
        name=name,
        prefix=secret[:10],
        token_hash=secret_hash(secret),
        roles=tuple(sorted(set(roles))),
        organisation=organisation,
        created_by=actor.login,
        created_at=now,
    )
    with engine.store.transaction() as tx:
        if tx.get_organisation(organisation) is None:
            raise BadInput(f"organisation {organisation!r} does not exist", field="organisation")
        if any(t.name == name and t.active for t in tx.list_tokens()):
            raise BadInput(f"an active token named {name!r} exists; revoke it first", field="name")
        tx.insert_token(token)
        details = {"token": token.id, "name": name, "roles": list(token.roles), "organisation": organisation}
        tx.append_audit([AuditEntry(now, actor.login, actor.organisation, "token.created", details=details)])
    return token, secret


def revoke_token(engine: Engine, actor: Actor, token_id: str) -> ApiToken:
    if not actor.is_admin:
        raise NotPermitted(actor.login, "revoke", "API tokens", "administrators manage API tokens")
    now = engine.clock.now()
    with engine.store.transaction() as tx:
        token = next((t for t in tx.list_tokens() if t.id == token_id), None)
        if token is None:
            raise NotFound("token", token_id)
        if token.revoked_at is None:
            tx.update_token(token_id, revoked_at=now)
            details = {"token": token.id, "name": token.name}
            tx.append_audit([AuditEntry(now, actor.login, actor.organisation, "token.revoked", details=details)])
            token = replace(token, revoked_at=now)
        return token


def list_tokens(engine: Engine, actor: Actor) -> list[ApiToken]:
    if not actor.is_admin:
        raise NotPermitted(actor.login, "list", "API tokens", "administrators manage API tokens")
    with engine.store.transaction() as tx:
        return tx.list_tokens()


def token_actor(token: ApiToken) -> Actor:
    return Actor(f"api:{token.name}", token.organisation, frozenset(token.roles), f"API: {token.name}")


def authenticate_token(engine: Engine, secret: str) -> Actor:
    """The actor of a bearer token, or NotAuthenticated."""
    if not secret or not secret.startswith(TOKEN_PREFIX) or len(secret) > 100:
        raise NotAuthenticated("the API token is malformed")
    now = engine.clock.now()
    with engine.store.transaction() as tx:
        token = tx.find_token(secret_hash(secret))
        if token is None or token.revoked_at is not None:
            raise NotAuthenticated("the API token is unknown or revoked")
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
            tx.update_token(token.id, last_used_at=now)
    return token_actor(token)


# -- calendar feed tokens -------------------------------------------------------------------------


def rotate_calendar_token(engine: Engine, actor: Actor) -> str:
    """A new private calendar URL token for the actor; the old URL stops working."""
    secret = CALENDAR_PREFIX + secrets.token_urlsafe(24)
    now = engine.clock.now()
    with engine.store.transaction() as tx:
        if tx.get_user(actor.login) is None:
            raise NotFound("user", actor.login)
        tx.set_calendar_token(actor.login, secret_hash(secret))
        tx.append_audit([AuditEntry(now, actor.login, actor.organisation, "user.calendar_token_rotated")])
    return secret


def calendar_actor(engine: Engine, secret: str) -> Actor:
    if not secret or not secret.startswith(CALENDAR_PREFIX) or len(secret) > 100:
        raise NotFound("calendar", "feed")
    with engine.store.transaction() as tx:
        user = tx.user_by_calendar_token(secret_hash(secret))
    if user is None or not user.active:
        raise NotFound("calendar", "feed")
    return Actor.of(user)
