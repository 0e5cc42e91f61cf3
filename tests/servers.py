"""Real servers for tests, on free loopback ports: Infinity (in its own venv) and `zhiku serve` itself."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[1]
INFINITY_SERVED_NAME = "minilm"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    pytest.fail(f"server at {url} not ready within {timeout:g} s:\n{log.read_text(errors='replace')[-3000:]}")


@contextlib.contextmanager
def _process(args: list[str], env: dict[str, str], ready_url: str, log: Path, timeout: float) -> Iterator[int]:
    with log.open("wb") as sink:
        process = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, env=env)
        try:
            _wait_until_ready(process, ready_url, log, timeout)
            yield process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def infinity_server(workdir: Path) -> Iterator[str]:
    """Infinity serving all-MiniLM-L6-v2 from site-packages, offline; yields its base URL."""
    binary = os.environ.get("ZHIKU_INFINITY_BIN", str(ROOT / ".venv-infinity/bin/infinity_emb"))
    require(Path(binary).is_file(), f"infinity-emb not installed at {binary} (scripts/test installs it)")
    from zhiku.embedding.models import model_location, resolve_model

    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0", "DO_NOT_TRACK": "1"}
    args = [binary, "v2", "--model-id", model_location(resolve_model("all-minilm-l6-v2")), "--served-model-name",
            INFINITY_SERVED_NAME, "--engine", "torch", "--host", "127.0.0.1", "--port", str(port),
            "--no-model-warmup"]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with _process(args, env, f"{url}/models", workdir / "infinity.log", timeout=180):
        yield url


@contextlib.contextmanager
def zhiku_server(
    workdir: Path, ready_path: str = "/readyz", workers: int = 1, bin_dir: Path | None = None, **settings: str
) -> Iterator[tuple[str, int]]:
    """`zhiku serve` (``--workers`` processes) in a subprocess with ``ZHIKU_<NAME>`` settings; yields its base URL
    and process id once ``ready_path`` answers 200. Authentication is off (loopback development mode) unless
    ``auth="on"``. Its log is ``workdir/zhiku-serve.log``; the home is ``workdir/home`` unless ``home`` is given."""
    settings.setdefault("auth", "off")
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ZHIKU_HOME": str(workdir / "home")}
    env.update({f"ZHIKU_{name.upper()}": value for name, value in settings.items()})
    args = [
        str((bin_dir or Path(sys.executable).parent) / "zhiku"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    args += ["--workers", str(workers)]
    workdir.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    with _process(args, env, f"{url}{ready_path}", workdir / "zhiku-serve.log", timeout=180) as pid:
        yield url, pid


@contextlib.contextmanager
def app_in_thread(app: Any) -> Iterator[str]:
    """An ASGI app served by uvicorn in a thread of the test process on a free loopback port; yields its URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


UI_PASSWORD = "a password for the ui tests"


def create_person(url: str, admin_key: str, login: str, role: str = "admin") -> str:
    """Create an account (with the admin key) that logs in with :data:`UI_PASSWORD`; returns its id."""
    made = httpx.post(
        f"{url}/api/v1/accounts",
        json={"login": login, "role": role, "password": UI_PASSWORD},
        headers={"authorization": f"Bearer {admin_key}"},
        timeout=60,
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def ui_login(context: Any, url: str, admin_key: str, role: str = "admin") -> str:
    """Log a Playwright browser context in as a new person of ``role`` (their session cookie is then the
    context's, as after the login page); returns the login."""
    login = f"ui-{role}-{uuid.uuid4().hex[:8]}"
    create_person(url, admin_key, login, role)
    answer = context.request.post(f"{url}/api/v1/auth/login", data={"login": login, "password": UI_PASSWORD})
    assert answer.ok, answer.text()
    return login


CHROMIUM = "/usr/bin/chromium"


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright (never `playwright install`); skips, or fails in CI, when
    it is not installed."""
    require(Path(CHROMIUM).is_file(), f"{CHROMIUM} missing (apt-get install chromium; scripts/test does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
