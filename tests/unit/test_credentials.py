"""Who is calling: passwords (with the login rate limit and rehashing), the administrators'
management of users, API tokens for machine clients and private calendar-feed tokens."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from engine.clock import VirtualClock
from engine.credentials import UserChange
from engine.directory import Actor, Role
from engine.engine import Engine
from engine.errors import BadInput, NotAuthenticated, NotFound, NotPermitted, TooManyAttempts
from engine.ports import AuditQuery, Store
from engine.settings import Settings
from tests.conftest import ADMIN, COORDINATOR, KOPEYSK, MINISTRY, TROITSK, seed_directory

# A cheap argon2id cost: the production default (t=3, 64 MiB) makes every hash take ~0.1 s.
FAST = Settings(argon2_time_cost=1, argon2_memory_kib=8192)
PASSWORD = "Kl3ver-Passw0rd"
OTHER_PASSWORD = "An0ther-Secret!"


@pytest.fixture
def auth_engine(store: Store, clock: VirtualClock) -> Engine:
    """An engine with a cheap password hash on the `store` fixture (memory here, SQL when re-collected)."""
    engine = Engine(store, clock, settings=FAST)
    seed_directory(engine)
    return engine


def set_password(engine: Engine, login: str, password: str = PASSWORD) -> None:
    engine.save_user(ADMIN, UserChange(login=login, password=password))


def stored_hash(engine: Engine, login: str) -> str | None:
    with engine.store.transaction() as tx:
        user = tx.get_user(login)
    assert user is not None
    return user.password_hash


def audit_of(engine: Engine, action: str) -> list:
    return engine.audit(ADMIN, AuditQuery(action=action, limit=10_000))


# -- passwords ------------------------------------------------------------------------------------


def test_authenticate_with_the_right_password_gives_the_users_actor(auth_engine: Engine) -> None:
    set_password(auth_engine, "troitsk-go")
    actor = auth_engine.authenticate("troitsk-go", PASSWORD, "10.0.0.1")
    assert actor == Actor("troitsk-go", "troitsk-go", frozenset({Role.MOUO}), "troitsk-go")
    # The login is case- and space-insensitive.
    assert auth_engine.authenticate("  Troitsk-GO ", PASSWORD, "10.0.0.1").login == "troitsk-go"


def test_users_without_a_password_cannot_log_in(auth_engine: Engine) -> None:
    assert stored_hash(auth_engine, "kopeysk-go") is None  # seed_directory sets no passwords
    with pytest.raises(NotAuthenticated):
        auth_engine.authenticate("kopeysk-go", "", "10.0.0.1")
    with pytest.raises(NotAuthenticated):
        auth_engine.authenticate("kopeysk-go", PASSWORD, "10.0.0.1")


def test_every_kind_of_failed_login_says_the_same(auth_engine: Engine) -> None:
    set_password(auth_engine, "troitsk-go")
    set_password(auth_engine, "kopeysk-go")
    auth_engine.save_user(ADMIN, UserChange(login="kopeysk-go", active=False))
    messages = []
    for login, password in (
        ("troitsk-go", "wrong-password-1"),  # wrong password
        ("nobody-here", PASSWORD),  # unknown user
        ("kopeysk-go", PASSWORD),  # the right password of an inactive user
        ("", PASSWORD),  # no login at all
    ):
        with pytest.raises(NotAuthenticated) as caught:
            auth_engine.authenticate(login, password, "10.0.0.2")
        messages.append(caught.value.message)
    assert len(set(messages)) == 1, messages
    assert messages[0] == "login or password is wrong"


def test_too_many_failures_lock_the_login_even_with_the_right_password(
    auth_engine: Engine, clock: VirtualClock
) -> None:
    set_password(auth_engine, "troitsk-go")
    limit = auth_engine.settings.login_rate_limit_per_minute
    for _ in range(limit - 1):
        with pytest.raises(NotAuthenticated):
            auth_engine.authenticate("troitsk-go", "wrong-password", "10.0.0.1")
    # One failure short of the limit the right password still works...
    assert auth_engine.authenticate("troitsk-go", PASSWORD, "10.0.0.1").login == "troitsk-go"
    with pytest.raises(NotAuthenticated):
        auth_engine.authenticate("troitsk-go", "wrong-password", "10.0.0.1")
    # ...at the limit it does not: the password is not even checked.
    with pytest.raises(TooManyAttempts) as caught:
        auth_engine.authenticate("troitsk-go", PASSWORD, "10.0.0.1")
    assert caught.value.retry_after == 60
    clock.advance(timedelta(seconds=59))
    with pytest.raises(TooManyAttempts):
        auth_engine.authenticate("troitsk-go", PASSWORD, "10.0.0.1")
    clock.advance(timedelta(seconds=61))  # a minute after the last (refused) attempt
    assert auth_engine.authenticate("troitsk-go", PASSWORD, "10.0.0.1").login == "troitsk-go"


def test_failures_are_counted_per_login_across_addresses(auth_engine: Engine) -> None:
    set_password(auth_engine, "troitsk-go")
    set_password(auth_engine, "kopeysk-go")
    limit = auth_engine.settings.login_rate_limit_per_minute
    for n in range(limit):
        with pytest.raises(NotAuthenticated):
            auth_engine.authenticate("troitsk-go", "wrong-password", f"10.1.0.{n}")
    with pytest.raises(TooManyAttempts):
        auth_engine.authenticate("troitsk-go", PASSWORD, "10.9.9.9")  # a fresh address does not help
    # Another account from another address is not affected.
    assert auth_engine.authenticate("kopeysk-go", PASSWORD, "10.9.9.9").login == "kopeysk-go"


def test_failures_are_counted_per_address_across_logins(auth_engine: Engine) -> None:
    set_password(auth_engine, "troitsk-go")
    limit = auth_engine.settings.login_rate_limit_per_minute
    for n in range(limit):
        with pytest.raises(NotAuthenticated):
            auth_engine.authenticate(f"guess-{n}", "wrong-password", "10.2.0.1")
    with pytest.raises(TooManyAttempts):
        auth_engine.authenticate("troitsk-go", PASSWORD, "10.2.0.1")
    assert auth_engine.authenticate("troitsk-go", PASSWORD, "10.2.0.2").login == "troitsk-go"


def test_the_rate_limit_follows_the_settings(store: Store, clock: VirtualClock) -> None:
    engine = Engine(store, clock, settings=FAST.with_(login_rate_limit_per_minute=2))
    seed_directory(engine)
    set_password(engine, "troitsk-go")
    for _ in range(2):
        with pytest.raises(NotAuthenticated):
            engine.authenticate("troitsk-go", "wrong-password", "10.3.0.1")
    with pytest.raises(TooManyAttempts):
        engine.authenticate("troitsk-go", PASSWORD, "10.3.0.1")


def test_successful_logins_do_not_count_as_failures(auth_engine: Engine) -> None:
    set_password(auth_engine, "troitsk-go")
    for _ in range(auth_engine.settings.login_rate_limit_per_minute + 5):
        assert auth_engine.authenticate("troitsk-go", PASSWORD, "10.4.0.1").login == "troitsk-go"


def test_a_changed_cost_rehashes_the_password_on_the_next_login(auth_engine: Engine, clock: VirtualClock) -> None:
    set_password(auth_engine, "troitsk-go")
    old = stored_hash(auth_engine, "troitsk-go")
    assert old is not None and old.startswith("$argon2id$") and "t=1" in old and PASSWORD not in old
    # The same login with the same cost keeps the hash.
    auth_engine.authenticate("troitsk-go", PASSWORD, "10.5.0.1")
    assert stored_hash(auth_engine, "troitsk-go") == old
    # The operators raise the cost: the next successful login stores a hash with the new cost.
    stronger = Engine(auth_engine.store, clock, settings=FAST.with_(argon2_time_cost=2))
    with pytest.raises(NotAuthenticated):
        stronger.authenticate("troitsk-go", "wrong-password", "10.5.0.1")
    assert stored_hash(auth_engine, "troitsk-go") == old, "a failed login does not rehash"
    stronger.authenticate("troitsk-go", PASSWORD, "10.5.0.1")
    new = stored_hash(auth_engine, "troitsk-go")
    assert new is not None and new != old and "t=2" in new
    assert stronger.authenticate("troitsk-go", PASSWORD, "10.5.0.1").login == "troitsk-go"
    assert auth_engine.authenticate("troitsk-go", PASSWORD, "10.5.0.1").login == "troitsk-go"


def test_change_password(auth_engine: Engine) -> None:
    set_password(auth_engine, "troitsk-go")
    auth_engine.change_password(TROITSK, PASSWORD, OTHER_PASSWORD)
    with pytest.raises(NotAuthenticated):
        auth_engine.authenticate("troitsk-go", PASSWORD, "10.6.0.1")
    assert auth_engine.authenticate("troitsk-go", OTHER_PASSWORD, "10.6.0.1").login == "troitsk-go"
    [entry] = audit_of(auth_engine, "user.password_changed")
    assert entry.actor == "troitsk-go" and entry.organisation == "troitsk-go"
    assert OTHER_PASSWORD not in repr(entry) and PASSWORD not in repr(entry)


def test_change_password_needs_the_current_one(auth_engine: Engine) -> None:
    set_password(auth_engine, "troitsk-go")
    before = stored_hash(auth_engine, "troitsk-go")
    with pytest.raises(BadInput) as caught:
        auth_engine.change_password(TROITSK, "not-the-password", OTHER_PASSWORD)
    assert caught.value.field == "old_password"
    assert stored_hash(auth_engine, "troitsk-go") == before
    # A user without a password cannot "prove" an empty one.
    with pytest.raises(BadInput) as caught:
        auth_engine.change_password(KOPEYSK, "", OTHER_PASSWORD)
    assert caught.value.field == "old_password"


@pytest.mark.parametrize(
    ("new", "words"),
    [
        ("Sh0rt!", "at least 10"),
        ("my-troitsk-go-pass", "login"),
        ("MY-TROITSK-GO-PASS", "login"),
        ("abababababab", "too simple"),
        (PASSWORD, "differ"),
        ("x" * 200 + "Yz1!" * 20, "at most 256"),
    ],
)
def test_the_password_policy(auth_engine: Engine, new: str, words: str) -> None:
    set_password(auth_engine, "troitsk-go")
    before = stored_hash(auth_engine, "troitsk-go")
    with pytest.raises(BadInput) as caught:
        auth_engine.change_password(TROITSK, PASSWORD, new)
    assert caught.value.field == "new_password"
    assert words in caught.value.message
    assert stored_hash(auth_engine, "troitsk-go") == before
    assert not audit_of(auth_engine, "user.password_changed")


def test_change_password_of_an_unknown_or_inactive_user(auth_engine: Engine) -> None:
    with pytest.raises(NotFound):
        auth_engine.change_password(Actor("ghost", "troitsk-go", frozenset({Role.MOUO})), "x", OTHER_PASSWORD)
    set_password(auth_engine, "troitsk-go")
    auth_engine.save_user(ADMIN, UserChange(login="troitsk-go", active=False))
    with pytest.raises(NotFound):
        auth_engine.change_password(TROITSK, PASSWORD, OTHER_PASSWORD)


# -- users ------------------------------------------------------------------------------------------


def test_only_administrators_save_users(auth_engine: Engine) -> None:
    for actor in (COORDINATOR, MINISTRY, TROITSK):
        with pytest.raises(NotPermitted):
            auth_engine.save_user(actor, UserChange(login="troitsk-go", password=PASSWORD))
        with pytest.raises(NotPermitted):
            auth_engine.save_user(
                actor, UserChange(login="newbie", name="N", organisation="troitsk-go", roles=("admin",))
            )
    assert stored_hash(auth_engine, "troitsk-go") is None
    assert not audit_of(auth_engine, "user.saved")


def test_create_a_user_with_a_password(auth_engine: Engine) -> None:
    user = auth_engine.save_user(
        ADMIN,
        UserChange(
            login="Ivanova",
            name="  Иванова Мария  ",
            organisation="troitsk-go",
            roles=("mouo",),
            email="ivanova@example.org",
            password=PASSWORD,
        ),
    )
    assert user.login == "ivanova" and user.name == "Иванова Мария" and user.active
    assert user.roles == frozenset({"mouo"}) and user.email == "ivanova@example.org"
    assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert auth_engine.user("ivanova", ADMIN) == user
    actor = auth_engine.authenticate("ivanova", PASSWORD, "10.7.0.1")
    assert actor == Actor("ivanova", "troitsk-go", frozenset({"mouo"}), "Иванова Мария")
    [entry] = audit_of(auth_engine, "user.saved")
    assert entry.actor == "admin"
    assert entry.details == {
        "login": "ivanova",
        "created": True,
        "fields": ["email", "name", "organisation", "roles"],
        "password_set": True,
    }
    assert PASSWORD not in repr(entry) and user.password_hash not in repr(entry)


def test_update_a_user_keeps_what_is_not_given(auth_engine: Engine) -> None:
    set_password(auth_engine, "troitsk-go")
    before = auth_engine.user("troitsk-go", ADMIN)
    after = auth_engine.save_user(ADMIN, UserChange(login="troitsk-go", email="t@example.org"))
    assert after.email == "t@example.org"
    assert (after.name, after.organisation, after.roles, after.password_hash, after.active) == (
        before.name,
        before.organisation,
        before.roles,
        before.password_hash,
        before.active,
    )
    moved = auth_engine.save_user(ADMIN, UserChange(login="troitsk-go", organisation="kopeysk-go", roles=("expert",)))
    assert moved.organisation == "kopeysk-go" and moved.roles == frozenset({"expert"})
    assert auth_engine.authenticate("troitsk-go", PASSWORD, "10.7.0.2").organisation == "kopeysk-go"
    last = audit_of(auth_engine, "user.saved")[-1]
    assert last.details["created"] is False and last.details["password_set"] is False
    assert last.details["fields"] == ["organisation", "roles"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (UserChange(login="newbie", organisation="troitsk-go", roles=("mouo",)), "name"),
        (UserChange(login="newbie", name="Новичок", roles=("mouo",)), "organisation"),
        (UserChange(login="newbie", name="Новичок", organisation="troitsk-go"), "roles"),
        (UserChange(login="newbie", name="Новичок", organisation="troitsk-go", roles=()), "roles"),
        (UserChange(login="newbie", name="Новичок", organisation="troitsk-go", roles=("boss",)), "roles"),
        (UserChange(login="newbie", name="Новичок", organisation="nowhere", roles=("mouo",)), "organisation"),
        (UserChange(login="newbie", name="   ", organisation="troitsk-go", roles=("mouo",)), "name"),
        (UserChange(login="x", name="Новичок", organisation="troitsk-go", roles=("mouo",)), "login"),
        (UserChange(login="new user", name="Новичок", organisation="troitsk-go", roles=("mouo",)), "login"),
        (
            UserChange(login="newbie", name="Новичок", organisation="troitsk-go", roles=("mouo",), password="short"),
            "password",
        ),
        (
            UserChange(
                login="newbie", name="Новичок", organisation="troitsk-go", roles=("mouo",), password="newbie-2026-pw"
            ),
            "password",
        ),
        (UserChange(login="troitsk-go", organisation="nowhere"), "organisation"),
        (UserChange(login="troitsk-go", roles=("mouo", "superuser")), "roles"),
    ],
)
def test_save_user_refuses_bad_input(auth_engine: Engine, change: UserChange, field: str) -> None:
    users_before = auth_engine.users()
    with pytest.raises(BadInput) as caught:
        auth_engine.save_user(ADMIN, change)
    assert caught.value.field == field, caught.value.message
    assert auth_engine.users() == users_before
    assert not audit_of(auth_engine, "user.saved")


def test_an_administrator_cannot_deactivate_themselves(auth_engine: Engine) -> None:
    with pytest.raises(BadInput) as caught:
        auth_engine.save_user(ADMIN, UserChange(login="admin", active=False))
    assert caught.value.field == "active"
    assert auth_engine.user("admin", ADMIN).active
    # ...but may deactivate someone else, who then cannot log in.
    set_password(auth_engine, "coordinator")
    assert not auth_engine.save_user(ADMIN, UserChange(login="coordinator", active=False)).active
    with pytest.raises(NotAuthenticated):
        auth_engine.authenticate("coordinator", PASSWORD, "10.8.0.1")
    with pytest.raises(NotFound):
        auth_engine.actor("coordinator")


def test_a_user_is_shown_to_themselves_and_to_administrators(auth_engine: Engine) -> None:
    assert auth_engine.user("troitsk-go", TROITSK).login == "troitsk-go"
    assert auth_engine.user("troitsk-go", ADMIN).organisation == "troitsk-go"
    with pytest.raises(NotFound):
        auth_engine.user("troitsk-go", KOPEYSK)
    with pytest.raises(NotFound):
        auth_engine.user("troitsk-go", COORDINATOR)
    with pytest.raises(NotFound):
        auth_engine.user("nobody", ADMIN)


# -- API tokens -----------------------------------------------------------------------------------------


def test_a_token_is_shown_once_and_only_its_hash_is_stored(auth_engine: Engine, clock: VirtualClock) -> None:
    token, secret = auth_engine.create_token(ADMIN, "Registry-Sync", ["mouo"], "troitsk-go")
    assert secret.startswith("agt_") and len(secret) == 4 + 43
    assert token.name == "registry-sync" and token.roles == ("mouo",) and token.organisation == "troitsk-go"
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert token.prefix == secret[:10] and token.created_by == "admin" and token.created_at == clock.now()
    assert token.revoked_at is None and token.last_used_at is None and token.active
    [listed] = auth_engine.tokens(ADMIN)
    assert listed == token
    assert secret not in repr(listed)
    [entry] = audit_of(auth_engine, "token.created")
    assert entry.details == {
        "token": token.id,
        "name": "registry-sync",
        "roles": ["mouo"],
        "organisation": "troitsk-go",
    }
    assert secret not in repr(entry)
    other_token, other_secret = auth_engine.create_token(ADMIN, "other", ["coordinator"], "rcoko")
    assert other_secret != secret and other_token.token_hash != token.token_hash


def test_a_token_acts_as_its_own_scoped_identity(auth_engine: Engine) -> None:
    _token, secret = auth_engine.create_token(ADMIN, "etl", ["mouo", "expert", "mouo"], "kopeysk-go")
    actor = auth_engine.authenticate_token(secret)
    assert actor.login == "api:etl"
    assert actor.organisation == "kopeysk-go"
    assert actor.roles == frozenset({"mouo", "expert"})
    assert not actor.is_admin


def test_revoked_unknown_and_malformed_tokens_are_refused(auth_engine: Engine, clock: VirtualClock) -> None:
    token, secret = auth_engine.create_token(ADMIN, "etl", ["mouo"], "troitsk-go")
    assert auth_engine.authenticate_token(secret).login == "api:etl"
    clock.advance(timedelta(minutes=5))
    revoked = auth_engine.revoke_token(ADMIN, token.id)
    assert revoked.revoked_at == clock.now() and not revoked.active
    with pytest.raises(NotAuthenticated):
        auth_engine.authenticate_token(secret)
    with pytest.raises(NotAuthenticated):
        auth_engine.authenticate_token("agt_" + "A" * 43)  # well formed, unknown
    for malformed in ("", "Bearer " + secret, secret[4:], "agc_" + secret[4:], "agt_" + "x" * 200):
        with pytest.raises(NotAuthenticated):
            auth_engine.authenticate_token(malformed)
    # Revoking again changes nothing and writes no second audit line.
    clock.advance(timedelta(minutes=5))
    assert auth_engine.revoke_token(ADMIN, token.id).revoked_at == revoked.revoked_at
    assert len(audit_of(auth_engine, "token.revoked")) == 1
    with pytest.raises(NotFound):
        auth_engine.revoke_token(ADMIN, "no-such-token")


def test_only_administrators_manage_tokens(auth_engine: Engine) -> None:
    token, _secret = auth_engine.create_token(ADMIN, "etl", ["mouo"], "troitsk-go")
    for actor in (COORDINATOR, MINISTRY, TROITSK):
        with pytest.raises(NotPermitted):
            auth_engine.create_token(actor, "mine", ["admin"], "rcoko")
        with pytest.raises(NotPermitted):
            auth_engine.tokens(actor)
        with pytest.raises(NotPermitted):
            auth_engine.revoke_token(actor, token.id)
    assert [t.name for t in auth_engine.tokens(ADMIN)] == ["etl"]
    assert auth_engine.tokens(ADMIN)[0].active


def test_a_token_name_is_unique_among_active_tokens(auth_engine: Engine, clock: VirtualClock) -> None:
    first, first_secret = auth_engine.create_token(ADMIN, "etl", ["mouo"], "troitsk-go")
    with pytest.raises(BadInput) as caught:
        auth_engine.create_token(ADMIN, "ETL", ["mouo"], "troitsk-go")
    assert caught.value.field == "name"
    assert len(auth_engine.tokens(ADMIN)) == 1
    auth_engine.revoke_token(ADMIN, first.id)
    clock.advance(timedelta(minutes=1))  # tokens are listed oldest first
    second, second_secret = auth_engine.create_token(ADMIN, "etl", ["mouo"], "troitsk-go")
    assert second.id != first.id
    assert [(t.name, t.active) for t in auth_engine.tokens(ADMIN)] == [("etl", False), ("etl", True)]
    assert auth_engine.authenticate_token(second_secret).login == "api:etl"
    with pytest.raises(NotAuthenticated):
        auth_engine.authenticate_token(first_secret)


@pytest.mark.parametrize(
    ("name", "roles", "organisation", "field"),
    [
        ("", ["mouo"], "troitsk-go", "name"),
        ("has space", ["mouo"], "troitsk-go", "name"),
        ("x" * 61, ["mouo"], "troitsk-go", "name"),
        ("etl", [], "troitsk-go", "roles"),
        ("etl", ["root"], "troitsk-go", "roles"),
        ("etl", ["mouo"], "nowhere", "organisation"),
    ],
)
def test_create_token_refuses_bad_input(
    auth_engine: Engine, name: str, roles: list[str], organisation: str, field: str
) -> None:
    with pytest.raises(BadInput) as caught:
        auth_engine.create_token(ADMIN, name, roles, organisation)
    assert caught.value.field == field
    assert auth_engine.tokens(ADMIN) == []


def test_last_used_is_recorded_at_most_once_a_minute(auth_engine: Engine, clock: VirtualClock) -> None:
    token, secret = auth_engine.create_token(ADMIN, "etl", ["mouo"], "troitsk-go")
    clock.advance(timedelta(minutes=2))
    first_use = clock.now()
    auth_engine.authenticate_token(secret)
    [stored] = auth_engine.tokens(ADMIN)
    assert stored.last_used_at == first_use
    clock.advance(timedelta(seconds=30))
    auth_engine.authenticate_token(secret)
    assert auth_engine.tokens(ADMIN)[0].last_used_at == first_use
    clock.advance(timedelta(seconds=30))
    auth_engine.authenticate_token(secret)
    assert auth_engine.tokens(ADMIN)[0].last_used_at == clock.now()
    assert auth_engine.tokens(ADMIN)[0].token_hash == token.token_hash


# -- calendar tokens ---------------------------------------------------------------------------------------


def test_a_new_calendar_token_replaces_the_old(auth_engine: Engine) -> None:
    first = auth_engine.rotate_calendar_token(TROITSK)
    assert first.startswith("agc_") and len(first) > 30
    assert "BEGIN:VCALENDAR" in auth_engine.calendar_feed(first)
    second = auth_engine.rotate_calendar_token(TROITSK)
    assert second.startswith("agc_") and second != first
    with pytest.raises(NotFound):
        auth_engine.calendar_feed(first)
    assert "X-WR-CALNAME:Сроки: troitsk-go" in auth_engine.calendar_feed(second)
    # Each user has their own token; rotating one leaves the others working.
    other = auth_engine.rotate_calendar_token(KOPEYSK)
    auth_engine.rotate_calendar_token(TROITSK)
    assert "X-WR-CALNAME:Сроки: kopeysk-go" in auth_engine.calendar_feed(other)
    assert len(audit_of(auth_engine, "user.calendar_token_rotated")) == 4


def test_unknown_calendar_tokens_and_users_are_not_found(auth_engine: Engine) -> None:
    for secret in ("", "agc_unknown-token-000000000000000", "agt_" + "x" * 30, "agc_" + "x" * 200):
        with pytest.raises(NotFound):
            auth_engine.calendar_feed(secret)
    with pytest.raises(NotFound):
        auth_engine.rotate_calendar_token(Actor("api:etl", "troitsk-go", frozenset({Role.MOUO})))


def test_the_calendar_of_a_deactivated_user_stops(auth_engine: Engine) -> None:
    secret = auth_engine.rotate_calendar_token(TROITSK)
    auth_engine.save_user(ADMIN, UserChange(login="troitsk-go", active=False))
    with pytest.raises(NotFound):
        auth_engine.calendar_feed(secret)
    # Saving a user (e.g. a new password) does not forget their calendar token.
    auth_engine.save_user(ADMIN, UserChange(login="troitsk-go", active=True, password=PASSWORD))
    assert "BEGIN:VCALENDAR" in auth_engine.calendar_feed(secret)
