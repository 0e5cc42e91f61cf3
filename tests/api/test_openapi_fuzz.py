"""schemathesis with ALL its checks over every documented operation of a live `zhiku serve`: no 5xx, responses
(status, content type, headers, body, SSE events) as the OpenAPI schema says, 405 with a full ``Allow``,
schema-violating requests refused, schema-valid ones accepted (see tests/api/fuzz_hooks.py for the few fields
whose validity the schema cannot state), auth not ignored, deleted objects gone.

Driven through the schemathesis CLI (its pytest plugin does not work with pytest 9). The chat model is a STUB
(tests/api/test_chat.py's tiny OpenAI-compatible server): no chat model runs on this machine; zhiku itself is
real. The event streams (SSE that never ends by design) are included: schemathesis reads them until a short
request timeout (3 s, set for them alone) and checks the events it got.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.test_chat import stub_chat_app
from tests.servers import ROOT, app_in_thread, zhiku_server

ADMIN = "fuzz-admin-key-0123456789abcdef0123456789"


@pytest.fixture(scope="module")
def chat_stub() -> Iterator[str]:
    with app_in_thread(stub_chat_app()) as url:
        yield f"{url}/v1"


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory, chat_stub: str) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("fuzz")
    limits = {f"rate_limit_{c}": "100000/minute" for c in ("read", "write", "embed", "chat")}
    server = zhiku_server(workdir, auth="on", admin_api_key=ADMIN, chat_url=chat_stub, chat_model="stub", **limits)
    with server as (url, _):
        headers = {"Authorization": f"Bearer {ADMIN}"}
        httpx.post(f"{url}/api/v1/knowledge-bases", json={"name": "fuzz"}, headers=headers).raise_for_status()
        yield url


def test_all_checks_pass_on_every_operation(live_url: str, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    config = tmp_path / "schemathesis.toml"
    config.write_text('[[operations]]\ninclude-path-regex = "/events$"\nrequest-timeout = 3\n')
    args = [
        str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config), "run",
        f"{live_url}/openapi.json",
        "--checks", "all", "--exclude-checks", "positive_data_acceptance",  # replaced by the hooks' narrower one
        "--header", f"Authorization: Bearer {ADMIN}",
        "--max-examples", "50", "--seed", "17", "--request-timeout", "60", "--no-color",
        "--output-sanitize", "false", "--report", "json", "--report-json-path", str(report),
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.api.fuzz_hooks", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[output.find("FAILURES") :][:20000]
    tested = re.search(r"Tested: (\d+)", output)
    cases = re.search(r"(\d+) generated", output)
    assert tested, output[-3000:]
    assert cases, output[-3000:]
    assert int(tested.group(1)) >= 31, output[-3000:]  # every operation
    assert int(cases.group(1)) >= 1000, output[-3000:]
    print(f"schemathesis: {tested.group(1)} operations, {cases.group(1)} cases, all checks passed")
