"""Log-in, sessions, cookie flags, throttling and the audit rows they leave."""

from __future__ import annotations

from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from callflow.console import AccountError, Role
from callflow.console.passwords import PasswordPolicyError
from tests.console.conftest import PASSWORD, Console
from tests.support.store_text import store_text


async def test_login_sets_a_strict_httponly_session_cookie_and_audits(console: Console) -> None:
    async with console.client() as c:
        r = await c.post("/api/auth/login", json={"name": "sup", "password": PASSWORD})
        assert r.status_code == 200
        body = r.json()
        assert body["user"] == {"name": "sup", "role": "supervisor", "operator_id": None, "agency_id": None,
                                "centre_timezone": "Asia/Makassar"}
        assert len(body["csrf_token"]) >= 32
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("siaga112_session=")
        flags = {part.strip().lower() for part in cookie.split(";")}
        assert "httponly" in flags
        assert "samesite=strict" in flags
        assert "path=/" in flags
        assert "secure" not in flags  # plain http: a Secure cookie would never come back
        me = await c.get("/api/auth/me")
        assert me.json()["name"] == "sup"
    assert await console.audit_rows() == [("sup", "login", "ok", "", "192.0.2.7", "role=supervisor")]


async def test_cookie_is_secure_over_https(console: Console) -> None:
    async with console.client("https://console.test") as c:
        r = await c.post("/api/auth/login", json={"name": "sup", "password": PASSWORD})
        assert r.status_code == 200
        assert "secure" in {p.strip().lower() for p in r.headers["set-cookie"].split(";")}


async def test_failed_logins_are_refused_alike_and_audited_with_reason(console: Console) -> None:
    await console.ctx.accounts.disable("adm")
    async with console.client() as c:
        answers = [await c.post("/api/auth/login", json={"name": n, "password": p})
                   for n, p in (("sup", "wrong password!"), ("nobody", PASSWORD), ("adm", PASSWORD))]
    assert [a.status_code for a in answers] == [401, 401, 401]
    assert len({a.json()["message"] for a in answers}) == 1  # no hint which part was wrong
    assert all("set-cookie" not in a.headers for a in answers)
    rows = await console.audit_rows()
    assert [(r[0], r[1], r[2], r[4], r[5]) for r in rows] == [
        ("sup", "login", "failed", "192.0.2.7", "wrong password"),
        ("nobody", "login", "failed", "192.0.2.7", "unknown account"),
        ("adm", "login", "failed", "192.0.2.7", "account disabled"),
    ]


async def test_password_is_never_stored_or_logged_in_clear(console: Console) -> None:
    async with console.db.execute("SELECT password_hash FROM console_users") as cur:
        hashes = [r[0] for r in await cur.fetchall()]
    assert hashes
    assert all(h.startswith("scrypt$") and PASSWORD not in h for h in hashes)
    with capture_logs() as logs:
        async with console.client() as c:
            await c.post("/api/auth/login", json={"name": "sup", "password": "wrong password!"})
            await c.post("/api/auth/login", json={"name": "sup", "password": PASSWORD})
    assert "wrong password!" not in repr(logs)
    assert PASSWORD not in repr(logs)
    dump = await store_text(console.db)
    assert PASSWORD not in dump
    assert "wrong password!" not in dump


async def test_throttle_after_five_failures_per_account(console: Console) -> None:
    async with console.client() as c:
        for _ in range(5):
            r = await c.post("/api/auth/login", json={"name": "op1", "password": "nope nope nope"})
            assert r.status_code == 401
        r = await c.post("/api/auth/login", json={"name": "op1", "password": PASSWORD})
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) > 0
        assert "too many failed logins" in r.json()["message"]
        console.clock.advance(minutes=5, seconds=1)
        r = await c.post("/api/auth/login", json={"name": "op1", "password": PASSWORD})
        assert r.status_code == 200
    outcomes = [row[2] for row in await console.audit_rows()]
    assert outcomes == ["failed"] * 5 + ["throttled", "ok"]


async def test_session_expires_and_logout_ends_it(console: Console) -> None:
    async with console.client() as c:
        await console.login(c, "op1")
        assert (await c.get("/api/auth/me")).status_code == 200
        console.clock.advance(hours=12, seconds=1)
        r = await c.get("/api/auth/me")
        assert r.status_code == 401
        assert "log in" in r.json()["message"]
    async with console.client() as c:
        await console.login(c, "op1")
        cookie = c.cookies.get("siaga112_session")
        assert (await c.post("/api/auth/logout")).status_code == 204
        c.cookies.set("siaga112_session", cookie or "")
        assert (await c.get("/api/auth/me")).status_code == 401


async def test_disabling_an_account_ends_its_sessions(console: Console) -> None:
    async with console.client() as c:
        await console.login(c, "sup")
        await console.ctx.accounts.disable("sup")
        assert (await c.get("/api/auth/me")).status_code == 401


async def test_session_table_keeps_only_a_hash_of_the_token(console: Console) -> None:
    async with console.client() as c:
        await console.login(c, "sup")
        token = c.cookies.get("siaga112_session")
    assert token
    dump = await store_text(console.db)
    assert token not in dump


async def test_account_rules(console: Console) -> None:
    with pytest.raises(AccountError, match="already exists"):
        await console.ctx.accounts.add_user("SUP", Role.SUPERVISOR, PASSWORD)
    with pytest.raises(PasswordPolicyError, match="too short"):
        await console.ctx.accounts.add_user("new1", Role.OPERATOR, "short")
    with pytest.raises(AccountError, match="invalid name"):
        await console.ctx.accounts.add_user("bad name", Role.OPERATOR, PASSWORD)
    with pytest.raises(AccountError, match="only operator and supervisor accounts"):
        await console.ctx.accounts.add_user("adm2", Role.ADMIN, PASSWORD, operator_id="op2")
    # a supervisor's operator id is their own phone (listening in)
    assert (await console.ctx.accounts.add_user("sup2", Role.SUPERVISOR, PASSWORD,
                                                operator_id="op2")).operator_id == "op2"
    user = await console.ctx.accounts.add_user("rina", Role.OPERATOR, PASSWORD, operator_id="op5")
    assert user.operator_id == "op5"
    assert console.ctx.accounts.session_ttl == timedelta(hours=12)


async def test_login_takes_json_only_so_a_cross_site_form_cannot_log_in(console: Console) -> None:
    async with console.client() as c:
        r = await c.post("/api/auth/login", content=f'{{"name": "sup", "password": "{PASSWORD}"}}',
                         headers={"Content-Type": "text/plain"})
        assert r.status_code == 422
        assert "set-cookie" not in r.headers
        r = await c.post("/api/auth/login", data={"name": "sup", "password": PASSWORD})
        assert r.status_code == 422
