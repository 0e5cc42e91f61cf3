"""Git repositories as sources, against a real repository served over loopback by `git daemon`: adding by URL
through the real HTTP API, syncing commits (changed files become new versions, deleted files' documents go,
untouched files are not ingested again), hostile URLs refused with 4xx, the fetch's size cap, and the command line
(`zhiku ingest <local repository>`, `zhiku sync`, `zhiku sources`)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import require
from tests.servers import free_port, zhiku_server
from zhiku.errors import InvalidInputError, SourceFetchError
from zhiku.ingest.git import GitLimits, check_git_url, fetch, list_tree

ZHIKU = str(Path(sys.executable).parent / "zhiku")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
}  # fmt: skip
FINISHED = {"ready", "failed", "duplicate"}


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` (a working tree) and return its output."""
    done = subprocess.run(["git", "-C", str(repo), *args], env={**os.environ, **GIT_ENV}, capture_output=True,
                          text=True, check=True, timeout=60)  # fmt: skip
    return done.stdout


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with documents, a .gitignore'd file (never committed), and a symlink out of the tree."""
    require(shutil.which("git") is not None, "git is not installed (scripts/system-packages.txt)")
    root = tmp_path / "served" / "handbook"
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / "README.md").write_text("# Handbook\n\nThe handbook explains how the team ships releases.\n")
    (root / "docs").mkdir()
    (root / "docs" / "guide.md").write_text("# Guide\n\nDeployments happen on Tuesdays after the review.\n")
    (root / "notes.txt").write_text("Notes about the quarterly planning meeting and its agenda.\n")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (root / ".gitignore").write_text("secret.txt\n")
    (root / "secret.txt").write_text("ignored and never committed\n")
    (root / "passwd").symlink_to("/etc/passwd")
    commit_all(root, "first")
    return root


@contextlib.contextmanager
def git_daemon(base: Path) -> Iterator[str]:
    """`git daemon` serving every repository under ``base`` on a free loopback port; yields the URL prefix."""
    port = free_port()
    args = ["git", "daemon", "--export-all", f"--base-path={base}", "--reuseaddr", "--listen=127.0.0.1",
            f"--port={port}", "--informative-errors", str(base)]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail("git daemon did not start")
            time.sleep(0.1)
        yield f"git://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def served(repo: Path) -> Iterator[str]:
    """The repository's git:// URL."""
    with git_daemon(repo.parent) as url:
        yield f"{url}/{repo.name}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`zhiku serve` allowed to fetch from loopback (the test's git daemon), with the default model."""
    workdir = tmp_path_factory.mktemp("sources-api")
    with zhiku_server(workdir, source_allow_private="true") as (url, _):
        yield url


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`zhiku serve` with the default source settings: no private or loopback hosts."""
    workdir = tmp_path_factory.mktemp("sources-strict")
    with zhiku_server(workdir) as (url, _):
        yield url


def wait_documents(client: httpx.Client, kb: str, count: int, timeout: float = 240) -> dict[str, dict[str, Any]]:
    """The knowledge base's documents by path once ``count`` of them exist and all have finished ingesting."""
    deadline = time.monotonic() + timeout
    while True:
        documents = client.get(f"/api/v1/knowledge-bases/{kb}/documents").json()
        if len(documents) == count and all(d["status"] in FINISHED for d in documents):
            return {d["source"].split(":", 2)[2]: d for d in documents}
        if time.monotonic() > deadline:
            pytest.fail(f"documents not ingested in {timeout} s: {documents}")
        time.sleep(0.5)


def ingest_jobs(client: httpx.Client, kb: str) -> list[dict[str, Any]]:
    jobs = client.get("/api/v1/jobs", params={"limit": 200, "knowledge_base_id": kb}).json()
    return [job for job in jobs if job["kind"] == "ingest_document" and job["knowledge_base_id"] == kb]


def test_git_source_by_url_syncs_changes_deletions_and_leaves_untouched_files_alone(
    server: str, repo: Path, served: str
) -> None:
    with httpx.Client(base_url=server, timeout=300) as client:
        kb = client.post("/api/v1/knowledge-bases", json={"name": "handbook"}).json()["id"]
        added = client.post(f"/api/v1/knowledge-bases/{kb}/sources", json={"url": served})
        assert added.status_code == 201, added.text
        body = added.json()
        source = body["source"]
        assert body["created"]
        assert source["kind"] == "git"
        assert source["location"] == served
        first = body["sync"]
        assert sorted(first["added"]) == ["README.md", "docs/guide.md", "notes.txt"]
        skipped = {item["path"]: item["reason"] for item in first["skipped"]}
        assert "symbolic link" in skipped["passwd"]  # never followed out of the repository
        assert "logo.png" in skipped  # not a document type: left out, as an upload is refused
        assert "secret.txt" not in skipped
        assert ".gitignore" not in first["added"]
        assert first["commit"] == git(repo, "rev-parse", "HEAD").strip()
        before = wait_documents(client, kb, 3)
        assert all(d["status"] == "ready" and d["version"] == 1 for d in before.values())
        jobs_before = len(ingest_jobs(client, kb))
        assert jobs_before == 3

        # a change, a deletion and a new file in one commit
        (repo / "docs" / "guide.md").write_text("# Guide\n\nDeployments now happen on Thursdays.\n")
        (repo / "notes.txt").unlink()
        (repo / "docs" / "faq.md").write_text("# FAQ\n\nAsk the release captain about hotfixes.\n")
        head = commit_all(repo, "second")
        synced = client.post(f"/api/v1/knowledge-bases/{kb}/sources/{source['id']}/sync")
        assert synced.status_code == 200, synced.text
        report = synced.json()
        assert report["commit"] == head
        assert (report["added"], report["changed"], report["removed"]) == (["docs/faq.md"], ["docs/guide.md"],
                                                                           ["notes.txt"])  # fmt: skip
        assert report["unchanged"] == 1
        assert len(report["job_ids"]) == 2
        after = wait_documents(client, kb, 3)
        assert set(after) == {"README.md", "docs/guide.md", "docs/faq.md"}
        assert after["docs/guide.md"]["id"] == before["docs/guide.md"]["id"]
        assert after["docs/guide.md"]["version"] == 2  # a new version of the same document
        assert after["README.md"] == before["README.md"]  # untouched: the same row, the same version, no new job
        jobs = Counter(job["document_id"] for job in ingest_jobs(client, kb))  # the deleted file's went with it
        assert jobs == {after["README.md"]["id"]: 1, after["docs/guide.md"]["id"]: 2, after["docs/faq.md"]["id"]: 1}
        hits = client.post(f"/api/v1/knowledge-bases/{kb}/search", json={"query": "Thursdays deployments",
                                                                          "top_k": 3}).json()["hits"]  # fmt: skip
        assert hits[0]["document_id"] == after["docs/guide.md"]["id"]
        assert "Thursdays" in hits[0]["text"]

        again = client.post(f"/api/v1/knowledge-bases/{kb}/sources/{source['id']}/sync").json()
        assert again["added"] == again["changed"] == again["removed"] == again["job_ids"] == []
        assert again["unchanged"] == 3

        listed = client.get(f"/api/v1/knowledge-bases/{kb}/sources").json()
        assert [(s["id"], s["status"], s["commit"]) for s in listed] == [(source["id"], "synced", head)]
        same = client.post(f"/api/v1/knowledge-bases/{kb}/sources", json={"url": served, "sync": False})
        assert same.status_code == 200
        assert not same.json()["created"]

        gone = client.delete(f"/api/v1/knowledge-bases/{kb}/sources/{source['id']}")
        assert gone.status_code == 204
        assert client.get(f"/api/v1/knowledge-bases/{kb}/documents").json() == []
        assert client.get(f"/api/v1/knowledge-bases/{kb}/sources/{source['id']}").status_code == 404


def test_a_branch_is_followed_and_an_unreachable_repository_is_not_remembered(
    server: str, repo: Path, served: str
) -> None:
    git(repo, "checkout", "-q", "-b", "drafts")
    (repo / "draft.md").write_text("# Draft\n\nA draft of the onboarding checklist.\n")
    commit_all(repo, "draft")
    git(repo, "checkout", "-q", "main")
    with httpx.Client(base_url=server, timeout=300) as client:
        kb = client.post("/api/v1/knowledge-bases", json={"name": "drafts"}).json()["id"]
        added = client.post(f"/api/v1/knowledge-bases/{kb}/sources", json={"url": served, "ref": "drafts"})
        assert added.status_code == 201, added.text
        assert "draft.md" in added.json()["sync"]["added"]
        missing = client.post(f"/api/v1/knowledge-bases/{kb}/sources", json={"url": served + "-nope"})
        assert missing.status_code == 422
        assert missing.json()["error"]["code"] == "source_fetch_failed"
        assert len(client.get(f"/api/v1/knowledge-bases/{kb}/sources").json()) == 1


HOSTILE = [
    ("file:///etc", "scheme is not allowed"),
    ("/etc", "not a URL"),
    ("ext::sh -c touch% /tmp/zhiku-pwned", "spaces"),
    ("ext::sh", "transport helpers"),
    ("fd::3", "transport helpers"),
    ("-uhttp://example.com/r.git", "cannot start with '-'"),
    ("--upload-pack=touch /tmp/zhiku-pwned", "spaces"),
    ("ssh://-oProxyCommand=touch/r.git", "cannot start with '-'"),
    ("ftp://example.com/r.git", "scheme is not allowed"),
    ("https://user:secret@example.com/r.git", "credentials"),
    ("git@example.com:owner/r.git", "not a URL"),
    ("http://127.0.0.1:9/r.git", "loopback, private"),
    ("git://localhost/r.git", "loopback, private"),
    ("http://[::1]/r.git", "loopback, private"),
    ("http://[::ffff:127.0.0.1]/r.git", "loopback, private"),
    ("http://10.1.2.3/r.git", "loopback, private"),
    ("http://169.254.169.254/latest/meta-data", "loopback, private"),
    ("http://0.0.0.0/r.git", "loopback, private"),
    ("http://2130706433/r.git", "loopback, private"),  # 127.0.0.1 as one number
    ("http://0x7f.1/r.git", "loopback, private"),
    ("http://[fe80::1%25eth0]/r.git", ""),  # link-local with a zone: refused either way
    ("https://example.com/" + "a" * 2100, ""),
    ("not a url at all", "spaces"),
]


def test_hostile_urls_are_refused_with_4xx_and_nothing_is_remembered(strict_server: str, tmp_path: Path) -> None:
    with httpx.Client(base_url=strict_server, timeout=60) as client:
        kb = client.post("/api/v1/knowledge-bases", json={"name": "hostile"}).json()["id"]
        for url, says in HOSTILE:
            response = client.post(f"/api/v1/knowledge-bases/{kb}/sources", json={"url": url})
            assert response.status_code in (400, 422), (url, response.status_code, response.text)
            error = response.json()["error"]
            assert set(error) >= {"message", "type", "param", "code"}, error
            assert says in error["message"], (url, error["message"])
        bad_ref = client.post(f"/api/v1/knowledge-bases/{kb}/sources",
                              json={"url": "https://example.com/r.git", "ref": "--upload-pack=x"})  # fmt: skip
        assert bad_ref.status_code == 400
        assert bad_ref.json()["error"]["param"] == "ref"
        assert client.get(f"/api/v1/knowledge-bases/{kb}/sources").json() == []
    assert not Path("/tmp/zhiku-pwned").exists()


def test_url_checks_without_a_server() -> None:
    strict, local = GitLimits(), GitLimits(allow_local=True, allow_private=True)
    with pytest.raises(InvalidInputError, match="loopback"):
        check_git_url("http://127.0.0.1/r.git", strict)
    assert check_git_url("http://127.0.0.1/r.git", local) == "http://127.0.0.1/r.git"
    assert check_git_url("file:///srv/repo", local) == "file:///srv/repo"
    with pytest.raises(InvalidInputError, match="transport helpers"):
        check_git_url("ext::sh", local)  # not even the command line runs transport helpers


def test_fetch_stops_at_the_size_cap_and_leaves_the_last_sync_intact(repo: Path, served: str, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    limits = GitLimits(allow_private=True, max_bytes=256 * 1024)
    first = fetch(bare, served, None, limits)
    assert {f.path for f in list_tree(bare, first, limits).files} >= {"README.md", "notes.txt"}
    (repo / "big.txt").write_bytes(os.urandom(2 * 1024 * 1024))  # random: packs do not shrink it
    commit_all(repo, "big")
    with pytest.raises(SourceFetchError, match="over 262,144 bytes"):
        fetch(bare, served, None, limits)
    assert "big.txt" not in {f.path for f in list_tree(bare, first, limits).files}
    with pytest.raises(SourceFetchError, match="transport 'file' not allowed"):
        fetch(tmp_path / "other", repo.as_uri(), None, GitLimits(allow_private=True))  # file:// off by default


def test_fetch_stops_at_the_deadline(tmp_path: Path) -> None:
    """A server that accepts the connection and never answers: the fetch (and its helpers) end on time."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        limits = GitLimits(allow_private=True, timeout_seconds=2)
        started = time.monotonic()
        with pytest.raises(SourceFetchError, match="longer than 2 s"):
            fetch(tmp_path / "bare", f"git://127.0.0.1:{port}/silent", None, limits)
        assert time.monotonic() - started < 15


def test_cli_through_a_running_server_adds_and_syncs_by_url(server: str, repo: Path, served: str,
                                                            tmp_path: Path) -> None:  # fmt: skip
    """`zhiku ingest URL`, `zhiku sync` and `zhiku sources list` go through the server (ZHIKU_URL) as the other
    commands do; a local repository is refused there (the server may not even see that path)."""
    home = tmp_path / "client-home"
    httpx.post(f"{server}/api/v1/knowledge-bases", json={"name": "remote"}).raise_for_status()
    env = {"ZHIKU_URL": server}
    done = zhiku(home, "ingest", served, "--kb", "remote", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    row = next(line for line in done.stdout.splitlines() if served in line)
    assert [cell.strip() for cell in row.split("│")[3:5]] == ["3", "0"]  # added, changed
    (repo / "notes.txt").write_text("Notes about the planning meeting, moved to Wednesday.\n")
    commit_all(repo, "notes")
    done = zhiku(home, "sync", "--kb", "remote", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    row = next(line for line in done.stdout.splitlines() if served in line)
    assert [cell.strip() for cell in row.split("│")[3:7]] == ["0", "1", "0", "2"]  # added, changed, removed, same
    listed = zhiku(home, "sources", "list", "--kb", "remote", env=env)
    assert served in listed.stdout
    refused = zhiku(home, "ingest", str(repo), "--kb", "remote", env=env)
    assert refused.returncode == 2
    assert "by URL only" in refused.stderr


def zhiku(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the `zhiku` command on ``home`` (embedded unless ``env`` names a server)."""
    base = {**os.environ, "ZHIKU_HOME": str(home), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    base.pop("ZHIKU_URL", None)
    env = {**base, **(env or {})}
    return subprocess.run([ZHIKU, *args], env=env, capture_output=True, text=True, timeout=600, check=False)


def test_cli_ingests_a_local_repository_and_syncs_it(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert zhiku(home, "kb", "create", "notes").returncode == 0
    done = zhiku(home, "ingest", str(repo), "--kb", "notes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "added source" in done.stdout
    assert "3 ready" in done.stdout
    (repo / "README.md").write_text("# Handbook\n\nReleases ship every second Friday.\n")
    (repo / "docs" / "guide.md").unlink()
    commit_all(repo, "change")
    done = zhiku(home, "sync", "--kb", "notes")
    assert done.returncode == 0, done.stdout + done.stderr
    row = next(line for line in done.stdout.splitlines() if repo.as_uri() in line)
    assert [cell.strip() for cell in row.split("│")[3:8]] == ["0", "1", "1", "1", "2"]  # added..skipped
    assert "1 ready" in done.stdout
    listed = zhiku(home, "sources", "list")
    assert repo.as_uri() in listed.stdout
    assert "synced" in listed.stdout
    documents = zhiku(home, "docs", "list", "--kb", "notes")
    assert "guide.md" not in documents.stdout
    assert "README.md" in documents.stdout
    source_id = re.search(r"│ ([0-9a-f]{12}) │", listed.stdout).group(1)  # type: ignore[union-attr]
    removed = zhiku(home, "sources", "remove", source_id, "--kb", "notes")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert "2 documents" in removed.stdout
    assert not [p for p in (home / "sources").iterdir() if p.name.startswith(source_id)]  # repository, lock

    # a source deleted with its knowledge base leaves its repository until `zhiku sync` prunes it (once old)
    assert zhiku(home, "kb", "create", "other").returncode == 0
    assert zhiku(home, "ingest", str(repo), "--kb", "other", "--no-wait").returncode == 0
    assert zhiku(home, "kb", "delete", "other", "--yes").returncode == 0
    (orphan,) = [p for p in (home / "sources").iterdir() if p.is_dir()]
    old = time.time() - 2 * 3600
    os.utime(orphan, (old, old))
    pruned = zhiku(home, "sync")
    assert "no sources to sync" in pruned.stdout, pruned.stdout + pruned.stderr
    assert not orphan.exists()


def test_code_in_a_synced_repository_is_headed_by_its_path_and_symbol(repo: Path, tmp_path: Path) -> None:
    """A source file of a synced repository is parsed under its path in the repository: its chunks' heading path
    begins with the path, then the definition (``src/billing/invoices.py`` > ``class InvoiceMailer``), not the bare
    file name."""
    from zhiku.config import Settings
    from zhiku.core import Zhiku
    from zhiku.knowledge.bases import create_knowledge_base
    from zhiku.knowledge.sources import add_source, sync_source
    from zhiku.pipeline.tasks import job_runner
    from zhiku.search.options import SearchOptions
    from zhiku.search.retrieve import search

    (repo / "src" / "billing").mkdir(parents=True)
    (repo / "src" / "billing" / "invoices.py").write_text(
        "class InvoiceMailer:\n"
        '    """Sends invoices to customers."""\n\n'
        "    def send_reminder(self, invoice):\n"
        '        """Email a payment reminder for an overdue invoice."""\n'
        "        return self.outbox.send(invoice.customer.email, 'Your invoice is overdue')\n",
        encoding="utf-8",
    )
    commit_all(repo, "code")
    with Zhiku(Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'z.db'}")) as app:
        kb = create_knowledge_base(app, "code")
        source, _ = add_source(app, kb, str(repo))
        report = sync_source(app, kb, source)
        with job_runner(app, workers=1, poll_interval=0.05) as runner:
            runner.wait_for(report.job_ids, timeout=300)
        hits = search(app, kb, "email a reminder for an overdue invoice", SearchOptions(mode="dense", top_k=1))
    assert hits[0].heading_path == ["src/billing/invoices.py", "class InvoiceMailer"]  # the class fits one chunk
    assert hits[0].filename == "invoices.py"
