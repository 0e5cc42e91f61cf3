"""Git repositories as document sources: check a URL, fetch a branch's newest commit, list and read its files.

Everything goes through the ``git`` command (Debian's package) in a bare repository kept under the data folder:
nothing is ever checked out, so a hostile repository's symlinks, ``.git`` look-alikes, case collisions or
enormous paths never touch the file system; files are read from the object store by blob id, and a file whose
blob id did not change since the last sync is not read at all.

A URL from the HTTP API is hostile (a caller with a write key chooses it): only ``https``, ``http``, ``git`` and
``ssh`` URLs are accepted (no ``file://``, no local paths, no ``ext::`` and other transport helpers, nothing that
looks like an option), hosts on loopback, private, link-local and other special addresses are refused unless the
operator allows them (server-side request forgery), and git itself is confined the same way
(``GIT_ALLOW_PROTOCOL``, ``protocol.file.allow=never``, ``--`` before the URL, no prompts, no hooks, no
submodules, no system or user configuration), within a deadline and a cap on the bytes fetched.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from zhiku.errors import InvalidInputError, SourceFetchError

REMOTE_SCHEMES = ("https", "http", "git", "ssh")
"""URL schemes a repository may be fetched with from anywhere; ``file`` is added for the command line only."""

MAX_URL_CHARS = 2000
"""Longer URLs are refused (the sources table holds 2,000 characters)."""

MAX_REF_CHARS = 200
_REF = re.compile(r"[A-Za-z0-9._/-]+")

FETCHING = "refs/zhiku/fetching"
"""Where a fetch puts the commit until it is known to be within the limits ..."""
SYNCED = "refs/zhiku/synced"
"""... and where it is kept then (``gc`` keeps what these refer to, and nothing else)."""

GIT_FILES = {".gitignore", ".gitattributes", ".gitmodules"}
"""git's own configuration files: tracked, but not documents (folders skip ``.gitignore`` the same way)."""

SYMLINK_MODE = "120000"
SUBMODULE_MODE = "160000"


@dataclass(frozen=True)
class GitLimits:
    """How far one fetch may go, and where it may reach."""

    timeout_seconds: float = 300.0
    max_bytes: int = 512 * 1024 * 1024
    """Bytes the bare repository may hold on disk after (and during) a fetch."""
    allow_local: bool = False
    """``file://`` URLs and local paths (the command line, never the API)."""
    allow_private: bool = False
    """Hosts on loopback, private, link-local, shared or reserved addresses."""
    trusted: bool = False
    """The command line: the user's own git and ssh configuration, keys and credential helpers apply (for their
    private repositories). Never for the API, whose fetches see no configuration, credentials or keys at all."""


@dataclass(frozen=True)
class TreeFile:
    """A regular file of a commit: its path in the repository, blob id and size in bytes."""

    path: str
    blob: str
    size: int


@dataclass(frozen=True)
class Tree:
    """The files of a commit, and the entries skipped (symlinks, submodules) with why."""

    commit: str
    files: list[TreeFile]
    skipped: list[tuple[str, str]]


def _special_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def check_git_url(url: str, limits: GitLimits) -> str:
    """``url`` if it may be fetched under ``limits``, else an :class:`InvalidInputError` (400) saying why.

    Local paths are not URLs here: the command line turns an existing folder into a ``file://`` URL first.
    The host is resolved now to refuse loopback and private addresses; git resolves it again when it fetches
    (a DNS answer that changes in between is not caught: put the server behind an egress proxy if that matters).
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidInputError("give the repository's URL, e.g. https://github.com/owner/name.git", param="url")
    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise InvalidInputError(f"the URL is {len(url):,} characters; at most {MAX_URL_CHARS:,}", param="url")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise InvalidInputError("the URL contains spaces or control characters", param="url")
    if url.startswith("-"):
        raise InvalidInputError("a URL cannot start with '-' (it would read as an option)", param="url")
    head = url.split("/", 1)[0]
    if "::" in head:  # ext::, fd:: and other "transport::address" forms run helpers, even programs
        raise InvalidInputError("transport helpers (e.g. ext::) are not allowed; give a plain URL", param="url")
    parts = urlsplit(url)
    allowed = REMOTE_SCHEMES + (("file",) if limits.allow_local else ())
    if not parts.scheme or "://" not in url:
        raise InvalidInputError(
            f"not a URL: {url[:80]!r}; give a {', '.join(REMOTE_SCHEMES)} URL "
            "(scp-style 'host:path' addresses are not accepted; write ssh://host/path)",
            param="url",
        )
    if parts.scheme.lower() not in allowed:
        raise InvalidInputError(
            f"the {parts.scheme}:// scheme is not allowed; use one of {', '.join(allowed)}", param="url"
        )
    if parts.scheme.lower() == "file":
        return url
    if parts.password is not None:
        raise InvalidInputError(
            "credentials in the URL are not accepted (they would be stored and listed); give a public URL",
            param="url",
        )
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise InvalidInputError(f"the URL's host or port is not valid: {exc}", param="url") from None
    if not host:
        raise InvalidInputError("the URL has no host", param="url")
    if host.startswith("-") or (parts.username or "").startswith("-"):
        raise InvalidInputError("a host or user name cannot start with '-'", param="url")
    if not limits.allow_private:
        try:
            infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError) as exc:
            raise InvalidInputError(f"the host {host!r} cannot be resolved: {exc}", param="url") from None
        special = sorted({str(info[4][0]) for info in infos if _special_address(str(info[4][0]))})
        if special:
            raise InvalidInputError(
                f"the host {host!r} is on a loopback, private or reserved address ({', '.join(special)}); "
                "this server does not fetch from its own networks (setting source_allow_private)",
                param="url",
            )
    return url


def check_ref(ref: str | None) -> str | None:
    """A branch or tag name, or ``None`` for the remote's default branch; refuses option-like and odd names."""
    if ref is None or ref == "":
        return None
    if len(ref) > MAX_REF_CHARS or not _REF.fullmatch(ref) or ref.startswith(("-", "/")) or ".." in ref:
        raise InvalidInputError(
            f"not a branch or tag name: {ref[:80]!r} (letters, digits, '.', '_', '/' and '-')", param="ref"
        )
    return ref


def _environment(limits: GitLimits) -> dict[str, str]:
    """git's environment: no prompts, only the allowed protocols; untrusted, no configuration but ours and no
    credentials of any kind."""
    protocols = list(REMOTE_SCHEMES) + (["file"] if limits.allow_local else [])
    confined = {
        "GIT_TERMINAL_PROMPT": "0",  # a prompt would hang a server thread (or a progress bar)
        "GIT_ALLOW_PROTOCOL": ":".join(protocols),
        "GIT_PROTOCOL_FROM_USER": "0",
        "LC_MESSAGES": "C",
    }
    if limits.trusted:
        return {**os.environ, **confined}
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE")}
    return {
        **keep,
        **confined,
        "HOME": "/nonexistent",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ASKPASS": "true",
        "SSH_ASKPASS": "true",
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new -F /dev/null",
    }


def _config(limits: GitLimits) -> list[str]:
    file_allowed = "always" if limits.allow_local else "never"
    return ["-c", f"protocol.file.allow={file_allowed}", "-c", "protocol.ext.allow=never",
            "-c", "core.hooksPath=/dev/null", "-c", "submodule.recurse=false",
            "-c", "fetch.recurseSubmodules=false", "-c", "http.followRedirects=false",
            *([] if limits.trusted else ["-c", "credential.helper="])]  # fmt: skip


def _git(repo: Path, args: Sequence[str], limits: GitLimits, *, timeout: float = 60.0) -> str:
    """Run a local git command on the bare repository ``repo``; its stdout, or a :class:`SourceFetchError`."""
    try:
        done = subprocess.run(
            ["git", *_config(limits), f"--git-dir={repo}", *args],
            env=_environment(limits),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise SourceFetchError("the git command is not installed (apt-get install git)") from None
    except subprocess.TimeoutExpired:
        raise SourceFetchError(f"git {args[0]} took longer than {timeout:g} s") from None
    if done.returncode != 0:
        raise SourceFetchError(f"git {args[0]} failed: {_last_line(done.stderr)}")
    return done.stdout.decode("utf-8", "surrogateescape")


def _last_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1][:500] if lines else "no message"


def _folder_bytes(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):  # a file git removed meanwhile
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def fetch(repo: Path, url: str, ref: str | None, limits: GitLimits) -> str:
    """Fetch the newest commit of ``ref`` (default: the remote's HEAD) of ``url`` into the bare repository
    ``repo`` (created if missing), shallowly, and return its commit id.

    The fetch is stopped when it runs past ``limits.timeout_seconds`` or the repository grows past
    ``limits.max_bytes`` (checked twice a second while it runs).
    """
    if not (repo / "HEAD").is_file():
        repo.mkdir(parents=True, exist_ok=True)
        _git(repo, ["init", "--bare", "--quiet"], limits)
    target = ref or "HEAD"
    args = ["git", *_config(limits), f"--git-dir={repo}", "fetch", "--quiet", "--depth=1", "--no-tags",
            "--no-recurse-submodules", "--no-write-fetch-head", "--", url, f"+{target}:{FETCHING}"]  # fmt: skip
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a chatty git never blocks on a full pipe
        returncode, problem = _run_fetch(args, repo, limits, errors)
        errors.seek(0)
        stderr = errors.read()
    if problem is None and returncode != 0:
        problem = f"git could not fetch {url}: {_last_line(stderr)}"
    if problem is None and _folder_bytes(repo) > limits.max_bytes:
        problem = f"the repository is over {limits.max_bytes:,} bytes (setting source_max_bytes)"
    if problem is not None:
        with contextlib.suppress(SourceFetchError):
            _git(repo, ["update-ref", "-d", FETCHING], limits)
        _forget_objects(repo, limits)
        raise SourceFetchError(problem, param="url")
    commit = _git(repo, ["rev-parse", "--verify", f"{FETCHING}^{{commit}}"], limits).strip()
    _git(repo, ["update-ref", SYNCED, commit], limits)  # only a fetch within the limits replaces the last one
    _git(repo, ["update-ref", "-d", FETCHING], limits)
    if _folder_bytes(repo) > limits.max_bytes // 2:  # older commits' objects pile up: keep the newest only
        _forget_objects(repo, limits)
    return commit


def _run_fetch(args: list[str], repo: Path, limits: GitLimits, errors: IO[bytes]) -> tuple[int, str | None]:
    """Run ``git fetch`` within the deadline and the size cap; its exit code and what stopped it, if anything."""
    try:
        process = subprocess.Popen(
            args, env=_environment(limits), stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True
        )
    except FileNotFoundError:
        raise SourceFetchError("the git command is not installed (apt-get install git)") from None
    deadline = time.monotonic() + limits.timeout_seconds
    problem = None
    while problem is None:
        try:
            process.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() > deadline:
            problem = f"fetching took longer than {limits.timeout_seconds:g} s (setting source_timeout_seconds)"
        elif _folder_bytes(repo) > limits.max_bytes:
            problem = f"the repository is over {limits.max_bytes:,} bytes (setting source_max_bytes)"
    if problem is not None:
        os.killpg(process.pid, 9)  # git fetch runs helpers (remote-https, index-pack): stop them all
        process.wait()
    return process.returncode, problem


def _forget_objects(repo: Path, limits: GitLimits) -> None:
    """Drop what a stopped or refused fetch left behind (partial packs), keeping the last synced commit."""
    for leftover in (repo / "objects" / "pack").glob("tmp_*"):
        leftover.unlink(missing_ok=True)
    with contextlib.suppress(SourceFetchError):  # best effort: the next fetch tries again
        _git(repo, ["gc", "--quiet", "--prune=now"], limits, timeout=limits.timeout_seconds)


def list_tree(repo: Path, commit: str, limits: GitLimits) -> Tree:
    """The regular files of ``commit`` with their blob ids and sizes; symlinks and submodules are skipped (a
    symlink's target is never followed, so a link out of the repository reads nothing)."""
    output = _git(repo, ["ls-tree", "-r", "-l", "-z", "--full-tree", commit], limits)
    files: list[TreeFile] = []
    skipped: list[tuple[str, str]] = []
    for entry in output.split("\0"):
        if not entry:
            continue
        meta, _, path = entry.partition("\t")
        mode, kind, blob, size = meta.split(None, 3)
        if mode == SYMLINK_MODE:
            skipped.append((path, "a symbolic link (not followed)"))
        elif mode == SUBMODULE_MODE or kind != "blob":
            skipped.append((path, "a submodule (not fetched)"))
        elif path.rsplit("/", 1)[-1] in GIT_FILES:
            continue
        else:
            files.append(TreeFile(path, blob, int(size.strip())))
    return Tree(commit, files, skipped)


def read_blob(repo: Path, blob: str, target: Path, limits: GitLimits) -> None:
    """Write the blob ``blob`` of ``repo`` to the file ``target``."""
    if not re.fullmatch(r"[0-9a-f]{40,64}", blob):
        raise SourceFetchError(f"not a blob id: {blob[:80]!r}")
    with target.open("wb") as sink:
        try:
            done = subprocess.run(
                ["git", *_config(limits), f"--git-dir={repo}", "cat-file", "blob", blob],
                env=_environment(limits),
                stdout=sink,
                stderr=subprocess.PIPE,
                timeout=120,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SourceFetchError(f"reading blob {blob} took longer than 120 s") from None
    if done.returncode != 0:
        raise SourceFetchError(f"git cat-file failed: {_last_line(done.stderr)}")


def remove_repository(repo: Path) -> None:
    """Delete a source's bare repository (nothing if it is gone)."""
    shutil.rmtree(repo, ignore_errors=True)


def is_repository_folder(path: Path) -> bool:
    """True for the top folder of a git working tree (it has ``.git``) or a bare repository."""
    return (path / ".git").exists() or ((path / "HEAD").is_file() and (path / "objects").is_dir())
