"""People on the real server: accounts, login sessions in HttpOnly cookies, CSRF, expiry, logout, rate-limited
guessing, role checks for sessions and keys alike on every route, tenant isolation, the audit log, and who
created what."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import zhiku_server
from zhiku.accounts import create_account
from zhiku.config import Settings
from zhiku.core import Zhiku

ADMIN = "accounts-admin-key-0123456789abcdef0123456789"
PASSWORD = "correct horse battery"


class Server:
    """The running server, its home, and helpers that act as the admin key or as logged-in people."""

    def __init__(self, url: str, home: Path) -> None:
        self.url = url
        self.home = home
        self.admin = httpx.Client(base_url=url, headers={"authorization": f"Bearer {ADMIN}"}, timeout=60)

    def invite(self, login: str, role: str, password: str | None = PASSWORD) -> dict[str, Any]:
        """Create an account of the default tenant with the admin key."""
        answer = self.admin.post("/api/v1/accounts", json={"login": login, "role": role, "password": password})
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def browser(self) -> httpx.Client:
        """A client that keeps cookies, as a browser does (and sends no key)."""
        return httpx.Client(base_url=self.url, timeout=60)

    def log_in(self, login: str, password: str = PASSWORD) -> tuple[httpx.Client, str]:
        """A logged-in browser and its CSRF token."""
        browser = self.browser()
        answer = browser.post("/api/v1/auth/login", json={"login": login, "password": password})
        assert answer.status_code == 200, answer.text
        return browser, str(answer.json()["csrf_token"])

    def zhiku(self) -> Zhiku:
        """The server's database, opened directly (as the CLI on its machine does)."""
        return Zhiku(Settings(home=self.home, auth="on"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("accounts")
    with zhiku_server(workdir, auth="on", admin_api_key=ADMIN, rate_limit_login="6/minute") as (url, _):
        yield Server(url, workdir / "home")


def _error(answer: httpx.Response) -> dict[str, Any]:
    body = answer.json()
    assert set(body) == {"error"}, body
    return dict(body["error"])


def test_login_sets_an_httponly_cookie_writes_need_csrf_and_logout_revokes(server: Server) -> None:
    alice = server.invite("Alice@Example.org", "editor")
    assert alice["login"] == "alice@example.org"  # case-folded
    browser = server.browser()
    answer = browser.post("/api/v1/auth/login", json={"login": "ALICE@example.org", "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("zhiku_session=")
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= flags
    assert "secure" not in flags  # plain HTTP here: a Secure cookie would never come back
    # behind a TLS-terminating proxy (on 127.0.0.1, which uvicorn trusts by default) the cookie is Secure
    proxied = server.browser().post(
        "/api/v1/auth/login",
        json={"login": "alice@example.org", "password": PASSWORD},
        headers={"x-forwarded-proto": "https"},
    )
    assert "secure" in {part.strip().lower() for part in proxied.headers["set-cookie"].split(";")}
    assert PASSWORD not in answer.text
    assert "password_hash" not in answer.text
    csrf = answer.json()["csrf_token"]
    assert answer.json()["account"]["role"] == "editor"

    session = browser.get("/api/v1/auth/session").json()
    assert session["account"]["id"] == alice["id"]
    assert session["csrf_token"] == csrf
    assert browser.get("/api/v1/knowledge-bases").status_code == 200  # reads need no token

    body = {"name": "alice-kb"}
    for headers in ({}, {"x-csrf-token": "wrong"}, {"x-csrf-token": csrf[:-1]}, {"x-csrf-token": "é".encode() * 4}):
        refused = browser.post("/api/v1/knowledge-bases", json=body, headers=headers)
        assert refused.status_code == 403, refused.text
        assert _error(refused)["code"] == "csrf_failed"
    created = browser.post("/api/v1/knowledge-bases", json=body, headers={"x-csrf-token": csrf})
    assert created.status_code == 201, created.text
    assert created.json()["created_by"] == f"account:{alice['id']}"
    entries = server.admin.get("/api/v1/audit", params={"action": "knowledge_base.create"}).json()
    assert entries[0]["actor"] == f"account:{alice['id']}"
    assert entries[0]["target"] == created.json()["id"]

    stolen = browser.cookies["zhiku_session"]
    out = browser.post("/api/v1/auth/logout", headers={"x-csrf-token": csrf})
    assert out.status_code == 204
    assert 'zhiku_session=""' in out.headers["set-cookie"]
    replay = httpx.get(f"{server.url}/api/v1/knowledge-bases", cookies={"zhiku_session": stolen})
    assert replay.status_code == 401, replay.text  # the session is gone from the database, not only the browser
    assert "log in" in _error(replay)["message"]


def test_unknown_logins_and_wrong_passwords_get_the_same_answer(server: Server) -> None:
    server.invite("bob", "reader")
    unknown = server.browser().post("/api/v1/auth/login", json={"login": "nobody-here", "password": PASSWORD})
    wrong = server.browser().post("/api/v1/auth/login", json={"login": "bob", "password": PASSWORD + "!"})
    assert unknown.status_code == wrong.status_code == 401
    assert _error(unknown) == _error(wrong)
    assert "bob" not in wrong.text
    hostile: list[Any] = ["", " ", "\x00", "bob\x00", "\ud800", "b" * 1000, "' OR 1=1 --", "ｂｏｂ\u202e", "%", "_"]
    for login in hostile:
        for password in ("wrong\x00password", "\ud800"):
            body = json.dumps({"login": login, "password": password})  # escaped: a lone surrogate gets there
            answer = server.browser().post(
                "/api/v1/auth/login", content=body, headers={"content-type": "application/json"}
            )
            lone_surrogate = "\ud800" in login + password  # not a string JSON allows: 400 before any lookup
            assert answer.status_code in ((400,) if lone_surrogate else (401, 429)), (login, answer.text)
    for body in ({"login": "bob"}, {"login": 5, "password": PASSWORD}, {"login": "bob", "password": "x" * 1025},
                 {"login": "b" * 1001, "password": PASSWORD}, {"login": "bob", "password": PASSWORD, "role": "admin"},
                 [], "bob"):  # fmt: skip
        answer = server.browser().post("/api/v1/auth/login", json=body)
        assert answer.status_code == 400, (body, answer.text)
    form = server.browser().post("/api/v1/auth/login", content=b"login=bob&password=x")  # a cross-site form's post
    assert form.status_code == 415


def test_guessing_a_password_is_rate_limited_per_login_and_address(server: Server) -> None:
    server.invite("carol", "reader")
    browser = server.browser()
    statuses = [
        browser.post("/api/v1/auth/login", json={"login": "carol", "password": f"guess-{i}"}).status_code
        for i in range(6)
    ]
    assert statuses == [401] * 6
    limited = browser.post("/api/v1/auth/login", json={"login": "carol", "password": PASSWORD})
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert "login" in _error(limited)["message"]
    server.invite("dave", "reader")
    assert server.log_in("dave")  # another login from the same address is not held up


def test_roles_apply_to_sessions_and_to_a_persons_keys(server: Server) -> None:
    server.invite("erin", "reader")
    browser, csrf = server.log_in("erin")
    write = {"x-csrf-token": csrf}
    refused = browser.post("/api/v1/knowledge-bases", json={"name": "erin-kb"}, headers=write)
    assert refused.status_code == 403
    assert _error(refused)["message"].startswith("your role is 'reader'; this needs 'editor'")
    assert browser.get("/api/v1/accounts").status_code == 403
    assert browser.get("/api/v1/audit").status_code == 403
    too_much = browser.post("/api/v1/keys", json={"scope": "write"}, headers=write)
    assert too_much.status_code == 403
    made = browser.post("/api/v1/keys", json={"name": "erin's script"}, headers=write)
    assert made.status_code == 201, made.text
    key = made.json()
    assert key["account_id"] is not None
    assert key["scope"] == "read"
    tenant_key = browser.post("/api/v1/keys", json={"owner": "tenant"}, headers=write)
    assert tenant_key.status_code == 403
    mine = browser.get("/api/v1/keys").json()
    assert [k["id"] for k in mine] == [key["id"]]  # a person sees their own keys only
    script = httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key['key']}"})
    assert script.get("/api/v1/knowledge-bases").status_code == 200
    assert script.post("/api/v1/knowledge-bases", json={"name": "x"}).status_code == 403
    assert script.post("/api/v1/keys", json={}).status_code == 403  # a reader's key does not make keys

    erin = next(a for a in server.admin.get("/api/v1/accounts").json() if a["login"] == "erin")
    assert server.admin.patch(f"/api/v1/accounts/{erin['id']}", json={"disabled": True}).status_code == 200
    assert script.get("/api/v1/knowledge-bases").status_code == 401  # at once, on this process
    assert browser.get("/api/v1/knowledge-bases").status_code == 401
    again = server.browser().post("/api/v1/auth/login", json={"login": "erin", "password": PASSWORD})
    assert again.status_code == 401
    assert "disabled" in _error(again)["message"]
    assert server.admin.patch(f"/api/v1/accounts/{erin['id']}", json={"disabled": False}).status_code == 200
    assert server.admin.patch(f"/api/v1/accounts/{erin['id']}", json={"role": "editor"}).status_code == 200
    browser, csrf = server.log_in("erin")
    assert (
        browser.post("/api/v1/knowledge-bases", json={"name": "erin-kb"}, headers={"x-csrf-token": csrf}).status_code
        == 201
    )
    assert script.post("/api/v1/knowledge-bases", json={"name": "y"}).status_code == 403  # the key stays read


def _routes(server: Server) -> list[tuple[str, str, str]]:
    """(method, path with made-up ids, scope) of every authenticated API route, from the server's own schema."""
    schema = httpx.get(f"{server.url}/openapi.json").json()
    found = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            scope = operation.get("x-zhiku-scope")
            if scope:
                found.append((method.upper(), path.replace("{", "").replace("}", ""), scope))
    return found


def test_every_route_checks_the_role_of_sessions_and_keys_alike(server: Server) -> None:
    routes = _routes(server)
    assert len(routes) > 40
    assert {scope for *_, scope in routes} == {"read", "write", "admin"}
    server.invite("frank", "reader")
    server.invite("grace", "editor")
    callers = {}
    for login, role in (("frank", "reader"), ("grace", "editor")):
        browser, csrf = server.log_in(login)
        browser.headers["x-csrf-token"] = csrf
        callers[f"{role} session"] = (browser, role)
        key = server.admin.post("/api/v1/keys", json={"scope": {"reader": "read", "editor": "write"}[role]})
        callers[f"{role} key"] = (
            httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key.json()['key']}"}),
            role,
        )
    allowed = {"reader": {"read"}, "editor": {"read", "write"}}
    for method, path, scope in routes:
        anonymous = httpx.request(method, server.url + path, json={})
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        for caller, (client, role) in callers.items():
            answer = client.request(method, path, json={})
            # keys manage keys only when they are admin keys; people manage their own from a session
            makes_keys = path.startswith("/api/v1/keys") and caller.endswith("key")
            if scope in allowed[role] and not makes_keys:
                assert answer.status_code not in (401, 403, 500), (caller, method, path, answer.text)
            else:
                assert answer.status_code == 403, (caller, method, path, answer.text)


def test_accounts_of_another_tenant_are_out_of_reach(server: Server) -> None:
    with server.zhiku() as zhiku:
        create_account(zhiku, "acme", "heidi@acme.example", "admin", PASSWORD)
    ivan = server.invite("ivan", "reader")
    heidi, csrf = server.log_in("heidi@acme.example")
    write = {"x-csrf-token": csrf}
    listed = heidi.get("/api/v1/accounts").json()
    assert [a["login"] for a in listed] == ["heidi@acme.example"]
    for answer in (
        heidi.patch(f"/api/v1/accounts/{ivan['id']}", json={"role": "admin"}, headers=write),
        heidi.post(f"/api/v1/accounts/{ivan['id']}/password", json={}, headers=write),
        heidi.patch("/api/v1/accounts/ivan", json={"disabled": True}, headers=write),
    ):
        assert answer.status_code == 404, answer.text
    made = heidi.post("/api/v1/accounts", json={"login": "judy", "role": "editor"}, headers=write)
    assert made.status_code == 201
    assert made.json()["tenant_id"] == "acme"
    assert len(made.json()["password"]) >= 12
    assert [e.get("tenant_id", "acme") for e in heidi.get("/api/v1/audit").json()]
    actions = [e["action"] for e in heidi.get("/api/v1/audit").json()]
    assert actions == ["account.create", "account.create"]  # judy's, then heidi's own; nothing of the default tenant
    taken = heidi.post("/api/v1/accounts", json={"login": "IVAN"}, headers=write)
    assert taken.status_code == 409  # logins are unique across tenants: a login names one account
    assert heidi.get("/api/v1/knowledge-bases").json() == []


def test_admins_reset_passwords_and_cannot_lock_themselves_out(server: Server) -> None:
    invited = server.invite("ken", "reader", password=None)
    generated = invited["password"]
    ken, _ = server.log_in("ken", generated)
    reset = server.admin.post(f"/api/v1/accounts/{invited['id']}/password", json={})
    assert reset.status_code == 200
    assert ken.get("/api/v1/knowledge-bases").status_code == 401  # the reset ended ken's session
    assert server.browser().post("/api/v1/auth/login", json={"login": "ken", "password": generated}).status_code == 401
    ken, csrf = server.log_in("ken", reset.json()["password"])
    other, _ = server.log_in("ken", reset.json()["password"])
    change = {"current_password": "not it at all", "new_password": "a new secret phrase"}
    assert ken.post("/api/v1/auth/password", json=change, headers={"x-csrf-token": csrf}).status_code == 403
    change["current_password"] = reset.json()["password"]
    short = {**change, "new_password": "short"}
    assert ken.post("/api/v1/auth/password", json=short, headers={"x-csrf-token": csrf}).status_code == 400
    assert ken.post("/api/v1/auth/password", json=change, headers={"x-csrf-token": csrf}).status_code == 204
    assert ken.get("/api/v1/auth/session").status_code == 200  # this session stays
    assert other.get("/api/v1/auth/session").status_code == 401  # the other one ended
    assert server.admin.post("/api/v1/auth/password", json=change).status_code == 403  # a key has no password

    boss = server.invite("leo", "admin")
    leo, csrf = server.log_in("leo")
    me = leo.patch(f"/api/v1/accounts/{boss['id']}", json={"role": "reader"}, headers={"x-csrf-token": csrf})
    assert me.status_code == 403
    assert "your own" in _error(me)["message"]
    audit = server.admin.get("/api/v1/audit", params={"limit": 50}).json()
    assert any(e["action"] == "account.password_reset" and e["target"] == invited["id"] for e in audit)
    assert any(e["action"] == "account.password_change" and e["actor"] == f"account:{invited['id']}" for e in audit)
    assert all(PASSWORD not in str(e) and reset.json()["password"] not in str(e) for e in audit)


def test_a_session_expires(tmp_path: Path) -> None:
    with zhiku_server(tmp_path, auth="on", admin_api_key=ADMIN, session_hours="0.0005") as (url, _):
        server = Server(url, tmp_path / "home")
        server.invite("mallory", "reader")
        browser, _ = server.log_in("mallory")
        assert browser.get("/api/v1/auth/session").status_code == 200
        time.sleep(2.5)  # 0.0005 h = 1.8 s
        expired = httpx.get(f"{url}/api/v1/auth/session", cookies={"zhiku_session": browser.cookies["zhiku_session"]})
        assert expired.status_code == 401


def test_zhiku_users_creates_the_first_admin(server: Server) -> None:
    env = {"ZHIKU_HOME": str(server.home), "PATH": str(Path(sys.executable).parent)}
    zhiku = str(Path(sys.executable).parent / "zhiku")
    made = subprocess.run([zhiku, "users", "create", "Root@Example.org", "--admin"], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert made.returncode == 0, made.stderr
    password = made.stdout.strip()
    assert len(password) >= 12
    assert "shown only now" in made.stderr
    browser, _ = server.log_in("root@example.org", password)
    assert browser.get("/api/v1/accounts").status_code == 200
    listed = subprocess.run([zhiku, "users", "list"], env=env, capture_output=True, text=True, timeout=120)
    assert "root@example.org" in listed.stdout
    assert password not in listed.stdout
    bad = subprocess.run([zhiku, "users", "create", "two words"], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0
    assert "login" in bad.stderr
    assert "Traceback" not in bad.stderr
