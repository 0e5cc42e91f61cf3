"""Sources a knowledge base keeps in sync: git repositories (by URL, or a local repository from the command line)
and folders. Add, list, sync, delete; watch a folder.

A sync lists the source's files now, registers those that are new or changed since the last sync (a new document,
or a new version of the file's document), deletes the documents of files that are gone, and leaves the rest
alone: a file whose git blob id (or, in a folder, size and modification time) is what the last sync recorded is not
read, and one whose content is unchanged anyway is not ingested again (:func:`register_files` compares hashes), so
nothing untouched is embedded twice. One sync of a source runs at a time (a lock file), across processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.errors import ConflictError, DocumentError, InvalidInputError, QuotaExceededError, ZhikuError
from zhiku.ingest.git import GitLimits, check_git_url, check_ref, fetch, list_tree, read_blob, remove_repository
from zhiku.ingest.sources import SourceFile, iter_sources
from zhiku.ingest.watch import watch_changes
from zhiku.knowledge.bases import get_knowledge_base, tenant_usage
from zhiku.knowledge.documents import NewFile, Registration, delete_document, register_in_groups
from zhiku.storage.lookup import find_by_id
from zhiku.storage.models import SOURCE_PREFIX, Document, KnowledgeBase, Source, SourceKind, SourceStatus, utcnow
from zhiku.storage.staging import staging_folder

log = logging.getLogger(__name__)

MAX_PATH_CHARS = 900
"""Files with longer paths are skipped (a document's identity, ``source:<id>:<path>``, holds 2,000 characters)."""


def document_source(source_id: str, path: str) -> str:
    """The identity of the document of file ``path`` of source ``source_id``."""
    return f"{SOURCE_PREFIX}{source_id}:{path}"


def _prefix(source_id: str) -> str:
    return f"{SOURCE_PREFIX}{source_id}:"


@dataclass
class SyncReport:
    """What one sync did."""

    source_id: str
    commit: str | None = None
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """Files left out, with why (unsupported type, too big, a symbolic link, ...)."""
    registrations: list[Registration] = field(default_factory=list)

    @property
    def job_ids(self) -> list[str]:
        """The ingestion jobs the sync queued."""
        return [r.job_id for r in self.registrations if r.job_id]

    def summary(self) -> str:
        """One line: counts by outcome."""
        return (
            f"{len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed, "
            f"{self.unchanged} unchanged, {len(self.skipped)} skipped"
        )


def git_limits(settings: Settings, *, from_api: bool, location: str | None = None) -> GitLimits:
    """What a fetch may do: from the API, no local repositories and (unless the operator allows it) no private
    hosts; from the command line, anything. A ``file://`` source (only the command line adds them) may be synced
    from the API too: the operator chose it, not the caller."""
    local = location is not None and urlsplit(location).scheme.lower() == "file"
    return GitLimits(
        timeout_seconds=settings.source_timeout_seconds,
        max_bytes=settings.source_max_bytes,
        allow_local=local or not from_api,
        allow_private=settings.source_allow_private or not from_api,
        trusted=not from_api,
    )


def _local_repository_url(location: str) -> str | None:
    """A ``file://`` URL for an existing local folder (a repository, for the command line), else ``None``."""
    if "://" in location:
        return None
    path = Path(location).expanduser()
    if not path.is_dir():
        return None
    return path.resolve().as_uri()


def add_source(
    zhiku: Zhiku,
    kb: KnowledgeBase,
    location: str,
    *,
    kind: str = SourceKind.git,
    ref: str | None = None,
    from_api: bool = False,
) -> tuple[Source, bool]:
    """Remember a source of ``kb`` (not synced yet); returns it and whether it is new (the same location and ref
    added again is the same source).

    From the API only git URLs are accepted (:func:`zhiku.ingest.git.check_git_url`); the command line also takes
    a local repository (a folder, read through ``file://``) or a folder (``kind="folder"``).
    """
    if kind == SourceKind.folder:
        if from_api:
            raise InvalidInputError(
                "folders are kept in sync by the server's own setting (watch_folders), not added through the API",
                param="kind",
            )
        folder = Path(location).expanduser()
        if not folder.is_dir():
            raise InvalidInputError(f"{location}: not a folder", param="location")
        location, ref = str(folder.resolve()), None
    elif kind == SourceKind.git:
        ref = check_ref(ref)  # before the URL, whose check may wait for DNS
        local = None if from_api else _local_repository_url(location)
        location = local or check_git_url(location, git_limits(zhiku.settings, from_api=from_api))
    else:
        raise InvalidInputError(f"unknown source kind {kind!r}: git or folder", param="kind")
    with zhiku.db.session() as session:
        existing = session.scalar(
            select(Source).where(
                Source.kb_id == kb.id,
                Source.kind == kind,
                Source.location == location,
                Source.ref.is_(None) if ref is None else Source.ref == ref,
            )
        )
        if existing is not None:
            return existing, False
        source = Source(kb_id=kb.id, kind=str(kind), location=location, ref=ref, manifest={})
        session.add(source)
        session.flush()
        session.refresh(source)
        return source, True


def list_sources(zhiku: Zhiku, kb: KnowledgeBase | None = None) -> list[Source]:
    """The sources of ``kb`` (or of every knowledge base), oldest first."""
    with zhiku.db.session() as session:
        query = select(Source).order_by(Source.created_at)
        if kb is not None:
            query = query.where(Source.kb_id == kb.id)
        return list(session.scalars(query))


def get_source(zhiku: Zhiku, kb: KnowledgeBase, ident: str) -> Source:
    """A source of ``kb`` by id (or unique id prefix), or ``NotFoundError``."""
    with zhiku.db.session() as session:
        return find_by_id(session, select(Source).where(Source.kb_id == kb.id), Source.id, ident, what="source")


def synced_files(source: Source) -> int:
    """How many of the source's files its last sync registered (skipped ones left out)."""
    return sum(1 for value in (source.manifest or {}).values() if isinstance(value, str))


def source_documents(zhiku: Zhiku, source: Source) -> dict[str, Document]:
    """The documents of ``source``, by the file's path."""
    prefix = _prefix(source.id)
    with zhiku.db.session() as session:
        rows = session.scalars(
            select(Document).where(Document.kb_id == source.kb_id, Document.source.startswith(prefix, autoescape=True))
        )
        return {row.source[len(prefix) :]: row for row in rows}


def _repository(zhiku: Zhiku, source: Source) -> Path:
    return zhiku.settings.ensure_home() / "sources" / source.id


def delete_source(zhiku: Zhiku, kb: KnowledgeBase, source: Source, *, keep_documents: bool = False) -> int:
    """Forget a source: its fetched repository, and its documents unless ``keep_documents`` (they then stay as
    they are, no longer synced). Returns how many documents were deleted."""
    with _sync_lock(zhiku, source, wait=False):
        documents = [] if keep_documents else list(source_documents(zhiku, source).values())
        for document in documents:
            delete_document(zhiku, kb, document)
        with zhiku.db.session() as session:
            row = session.get(Source, source.id)
            if row is not None:
                session.delete(row)
        remove_repository(_repository(zhiku, source))
        (_repository(zhiku, source).parent / f"{source.id}.lock").unlink(missing_ok=True)  # held: no one syncs it
    return len(documents)


@contextlib.contextmanager
def _sync_lock(zhiku: Zhiku, source: Source, *, wait: bool) -> Iterator[None]:
    """One sync (or delete) of a source at a time, across processes: an exclusive lock on a file beside the
    repository. ``wait=False``: a source already being synced is a :class:`ConflictError` (409)."""
    folder = zhiku.settings.ensure_home() / "sources"
    folder.mkdir(mode=0o700, exist_ok=True)
    with (folder / f"{source.id}.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise ConflictError(
                "this source is being synced right now; try again when that sync has finished"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class _Entry:
    """A file of a source now: its path in the source, what identifies its content, its size, and how to copy it
    (or its own path, for a folder)."""

    path: str
    key: str
    size: int
    read: Callable[[Path], Path]


def sync_source(
    zhiku: Zhiku, kb: KnowledgeBase, source: Source, *, from_api: bool = False, wait: bool = True
) -> SyncReport:
    """Bring ``source``'s documents up to date (see the module's docstring); the ingestion jobs are queued, not
    waited for. A failed sync records its error on the source and raises it."""
    with _sync_lock(zhiku, source, wait=wait):
        _set_status(zhiku, source, SourceStatus.syncing, None)
        try:
            report = _sync(zhiku, kb, source, from_api=from_api)
        except ZhikuError as exc:
            _set_status(zhiku, source, SourceStatus.failed, exc.message)
            raise
        except Exception as exc:
            _set_status(zhiku, source, SourceStatus.failed, f"{type(exc).__name__}: {exc}")
            raise
    return report


def _set_status(zhiku: Zhiku, source: Source, status: str, error: str | None) -> None:
    with zhiku.db.session() as session:
        row = session.get_one(Source, source.id)
        row.status, row.error = status, error
    source.status, source.error = status, error


def _sync(zhiku: Zhiku, kb: KnowledgeBase, source: Source, *, from_api: bool) -> SyncReport:
    report = SyncReport(source.id)
    settings = zhiku.settings
    if source.kind == SourceKind.git:
        limits = git_limits(settings, from_api=from_api, location=source.location)
        if from_api and not limits.allow_local:
            check_git_url(source.location, limits)  # its host may resolve to another address by now
        repo = _repository(zhiku, source)
        report.commit = fetch(repo, source.location, source.ref, limits)
        tree = list_tree(repo, report.commit, limits)
        report.skipped += tree.skipped

        def reader(blob: str) -> Callable[[Path], Path]:
            def read(target: Path) -> Path:
                read_blob(repo, blob, target, limits)
                return target

            return read

        entries = [_Entry(f.path, f.blob, f.size, reader(f.blob)) for f in tree.files]
    else:
        entries = _folder_entries(source, report)
    if len(entries) > settings.source_max_files:
        raise InvalidInputError(
            f"the source has {len(entries):,} files; at most {settings.source_max_files:,} (setting source_max_files)"
        )
    _apply(zhiku, kb, source, entries, report)
    return report


def _folder_entries(source: Source, report: SyncReport) -> list[_Entry]:
    """A folder's files now (``.gitignore`` respected, as ``zhiku ingest`` reads folders); links out of it are
    skipped."""
    root = Path(source.location)
    if not root.is_dir():
        raise InvalidInputError(f"the folder {root} is gone (delete the source, or bring the folder back)")
    real_root = root.resolve()
    entries = []
    for item in iter_sources([root]):
        if not isinstance(item, SourceFile):
            report.skipped.append((str(item.path), item.message))
            continue
        relative = item.path.relative_to(root).as_posix()
        try:
            real = item.path.resolve(strict=True)
            stat = real.stat()
        except (OSError, RuntimeError) as exc:
            report.skipped.append((relative, f"cannot read: {exc}"))
            continue
        if real != real_root and real_root not in real.parents:
            report.skipped.append((relative, "a symbolic link out of the folder (not followed)"))
            continue

        def read(_: Path, real: Path = real) -> Path:
            return real

        entries.append(_Entry(relative, f"{stat.st_size}:{stat.st_mtime_ns}", stat.st_size, read))
    return entries


def _apply(zhiku: Zhiku, kb: KnowledgeBase, source: Source, entries: Sequence[_Entry], report: SyncReport) -> None:
    """Register the new and changed entries, delete the documents of files that are gone, record the manifest."""
    settings = zhiku.settings
    documents = source_documents(zhiku, source)
    old_manifest = dict(source.manifest or {})
    manifest: dict[str, Any] = {}
    todo: list[_Entry] = []
    for entry in entries:
        previous = old_manifest.get(entry.path)
        if len(entry.path) > MAX_PATH_CHARS:
            report.skipped.append((entry.path[:80] + "…", f"a path over {MAX_PATH_CHARS} characters"))
        elif entry.size > settings.max_file_bytes:
            report.skipped.append(
                (entry.path, f"{entry.size:,} bytes, over the limit of {settings.max_file_bytes:,} (max_file_bytes)")
            )
        elif previous == entry.key:
            manifest[entry.path] = entry.key  # the same content as last time: not even read
            report.unchanged += 1
        elif isinstance(previous, list) and len(previous) == 2 and previous[0] == entry.key:
            manifest[entry.path] = previous  # skipped last time, and unchanged since
            report.skipped.append((entry.path, str(previous[1])))
        else:
            todo.append(entry)
    incoming = sum(entry.size for entry in todo)
    if incoming > settings.source_max_bytes:
        raise InvalidInputError(
            f"{incoming:,} bytes of new and changed files; at most {settings.source_max_bytes:,} per sync "
            "(setting source_max_bytes)"
        )
    if settings.tenant_quota_bytes is not None and todo:
        used = tenant_usage(zhiku, kb.tenant_id)
        if used + incoming > settings.tenant_quota_bytes:
            raise QuotaExceededError(
                f"storage quota exceeded: {used:,} bytes used + {incoming:,} to sync > "
                f"{settings.tenant_quota_bytes:,} (setting tenant_quota_bytes)"
            )
    with staging_folder(settings.ensure_home()) as staging:
        files: list[NewFile] = []
        accepted: list[_Entry] = []
        for number, entry in enumerate(todo):
            path = entry.read(staging / str(number))  # named by number: a path is never a file name here
            name = entry.path.rsplit("/", 1)[-1]
            try:
                zhiku.checkers.check(path, name)  # unsupported, empty, damaged: skipped, as an upload is refused
            except DocumentError as exc:
                report.skipped.append((entry.path, exc.message))
                manifest[entry.path] = [entry.key, exc.message]  # not read again until it changes
                continue
            files.append(NewFile(path, document_source(source.id, entry.path), entry.path))
            accepted.append(entry)
        registrations = register_in_groups(zhiku, kb, files, created_by=f"source:{source.id}")
    for entry, registration in zip(accepted, registrations, strict=True):
        report.registrations.append(dataclasses.replace(registration, source=entry.path))
        if registration.outcome == "failed":
            report.skipped.append((entry.path, registration.message))
            continue
        manifest[entry.path] = entry.key
        if registration.outcome == "unchanged":
            report.unchanged += 1
        elif entry.path in documents:
            report.changed.append(entry.path)
        else:
            report.added.append(entry.path)
    present = {entry.path for entry in entries}
    for gone, document in sorted(documents.items()):
        if gone not in present:
            delete_document(zhiku, kb, document)
            report.removed.append(gone)
    with zhiku.db.session() as session:
        row = session.get_one(Source, source.id)
        row.manifest = manifest
        row.commit = report.commit or row.commit
        row.status, row.error, row.synced_at = SourceStatus.synced, None, utcnow()
        session.flush()
        session.refresh(row)
        for name in ("manifest", "commit", "status", "error", "synced_at", "updated_at"):
            setattr(source, name, getattr(row, name))


ORPHAN_AGE_SECONDS = 3600.0
"""A repository folder without a source is removed once this old (a younger one may belong to a source being added
right now)."""


def prune_repositories(zhiku: Zhiku, *, now: float | None = None) -> list[Path]:
    """Remove fetched repositories (and lock files) whose source is gone, e.g. with its deleted knowledge base (the
    database drops the rows; their folders stay until this runs)."""
    folder = zhiku.settings.ensure_home() / "sources"
    if not folder.is_dir():
        return []
    known = {source.id for source in list_sources(zhiku)}
    now = time.time() if now is None else now
    removed = []
    for entry in folder.iterdir():
        with contextlib.suppress(OSError):
            if entry.name.removesuffix(".lock") in known or now - entry.stat().st_mtime < ORPHAN_AGE_SECONDS:
                continue
            if entry.is_dir():
                remove_repository(entry)
            else:
                entry.unlink()
            removed.append(entry)
    return removed


class FolderWatcher:
    """Keeps folders in sync with knowledge bases while it runs: each is synced at start, then again whenever
    changes in it have paused for ``debounce`` seconds (one thread per folder)."""

    def __init__(
        self,
        zhiku: Zhiku,
        folders: dict[str, str],
        *,
        tenant_id: str = "default",
        on_sync: Callable[[Source, SyncReport], None] | None = None,
        on_error: Callable[[str, Exception], None] | None = None,
    ) -> None:
        self.zhiku = zhiku
        self.folders = dict(folders)
        self.tenant_id = tenant_id
        self.on_sync = on_sync
        self.on_error = on_error
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start watching (returns at once)."""
        for folder, kb_name in self.folders.items():
            thread = threading.Thread(
                target=self._run, args=(folder, kb_name), name=f"zhiku-watch-{Path(folder).name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop watching and wait for a sync under way to end."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        self._threads.clear()

    def _run(self, folder: str, kb_name: str) -> None:
        try:
            kb = get_knowledge_base(self.zhiku, kb_name, self.tenant_id)
            source, _ = add_source(self.zhiku, kb, folder, kind=SourceKind.folder)
        except Exception as exc:  # noqa: BLE001 - a wrong name or folder: said, the server goes on
            self._failed(folder, exc)
            return
        self._sync(kb, source, folder)
        debounce = self.zhiku.settings.watch_debounce_seconds
        try:
            for _ in watch_changes(Path(source.location), debounce=debounce, stop=self._stop):
                self._sync(kb, source, folder)
        except Exception as exc:  # noqa: BLE001 - the folder vanished, too many watches, ...: said, the server goes on
            self._failed(folder, exc)

    def _sync(self, kb: KnowledgeBase, source: Source, folder: str) -> None:
        try:
            report = sync_source(self.zhiku, kb, source)
        except Exception as exc:  # noqa: BLE001 - this sync failed (recorded on the source); the next change retries
            self._failed(folder, exc)
            return
        if self.on_sync is not None:
            self.on_sync(source, report)
        else:
            log.info("synced %s into %s: %s", folder, kb.name, report.summary())

    def _failed(self, folder: str, exc: Exception) -> None:
        if self.on_error is not None:
            self.on_error(folder, exc)
        else:
            log.error("watching %s: %s", folder, getattr(exc, "message", None) or exc)


def is_local_repository(location: str) -> bool:
    """True when ``location`` names an existing local folder (the command line reads it as a repository)."""
    return "://" not in location and os.path.isdir(os.path.expanduser(location))
