"""The CLI's way to a running zhiku server: the discovery file ``$ZHIKU_HOME/server.json`` and a small HTTP client
of the REST API whose errors are zhiku's own exceptions.

``zhiku serve`` writes ``server.json`` (mode 0600) with its local URL, its process id and an admin key of the
``default`` tenant made for the CLI of the same user; it revokes the key and deletes the file when it stops. A
file left by a killed server names a process that is gone (or a server that does not answer) and is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

import httpx

from zhiku import errors
from zhiku.errors import ZhikuError

SERVER_FILE = "server.json"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
UPLOAD_TIMEOUT = httpx.Timeout(600.0, connect=5.0)
STREAM_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
"""Event streams send a ping every 15 s: a minute of silence means the server is gone."""
MAX_RETRIES_429 = 20


class ServerUnreachableError(ZhikuError):
    """The zhiku server the CLI was pointed at does not answer (or stopped answering)."""

    status_code = 503
    code = "server_unreachable"


class ServerError(ZhikuError):
    """An error response of the server whose code zhiku's exceptions do not name."""

    def __init__(self, message: str, *, status_code: int, code: str, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.status_code = status_code
        self.code = code


@dataclass(frozen=True)
class ServerRecord:
    """What ``server.json`` says: where the local server listens, its process, the CLI's key."""

    url: str
    pid: int
    key: str | None = None
    key_id: str | None = None


def server_file(home: Path) -> Path:
    """The discovery file of a ``ZHIKU_HOME``."""
    return home / SERVER_FILE


def write_server_record(home: Path, record: ServerRecord) -> Path:
    """Write ``server.json`` atomically, readable by its owner only; returns its path."""
    path = server_file(home)
    temporary = path.with_name(f".{SERVER_FILE}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as sink:
        json.dump({"url": record.url, "pid": record.pid, "key": record.key, "key_id": record.key_id}, sink)
    os.replace(temporary, path)
    return path


def read_server_record(home: Path) -> ServerRecord | None:
    """The record of ``server.json``, or ``None`` when there is none (or it cannot be read or understood)."""
    try:
        data = json.loads(server_file(home).read_text(encoding="utf-8"))
        record = ServerRecord(
            url=str(data["url"]),
            pid=int(data["pid"]),
            key=str(data["key"]) if data.get("key") else None,
            key_id=str(data["key_id"]) if data.get("key_id") else None,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record


def remove_server_record(home: Path, pid: int) -> None:
    """Delete ``server.json`` if it is still the record of process ``pid``."""
    record = read_server_record(home)
    if record is not None and record.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            server_file(home).unlink()


def process_alive(pid: int) -> bool:
    """True when a process ``pid`` exists (of any user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def looks_like_zhiku(pid: int) -> bool:
    """False when the process's command line is readable and does not mention zhiku (a reused process id)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (or not allowed): trust the process id
    return b"zhiku" in command


def _error_for(response: httpx.Response, url: str) -> ZhikuError:
    """The zhiku exception of an error response (the OpenAI shape ``{"error": {message, type, param, code}}``)."""
    status = response.status_code
    try:
        body = response.json()
        detail = body["error"] if isinstance(body, dict) and isinstance(body.get("error"), dict) else {}
    except ValueError:
        detail = {}
    message = str(detail.get("message") or response.reason_phrase or f"HTTP {status}")
    code = str(detail.get("code") or "")
    param = detail.get("param") if isinstance(detail.get("param"), str) else None
    if status == 401 and message.startswith("missing API key"):
        message = (
            f"the zhiku server at {url} needs an API key: set ZHIKU_API_KEY (make one with "
            "`zhiku keys create --scope admin`)"
        )
    elif status == 401:
        message = (
            f"the zhiku server at {url} refused the API key ({message}): set ZHIKU_API_KEY to a valid one, or "
            "restart `zhiku serve` to renew the local CLI key"
        )
    elif status == 403:
        message = f"{message} (the API key in use at {url}; set ZHIKU_API_KEY to a key with more scope)"
    for cls in _error_classes():
        if cls.code == code and cls.status_code == status:
            return (
                cls(message, param=param)
                if cls.__init__ is ZhikuError.__init__
                else ServerError(message, status_code=status, code=code, param=param)
            )
    return ServerError(message, status_code=status, code=code or "server_error", param=param)


def _error_classes() -> list[type[ZhikuError]]:
    found: list[type[ZhikuError]] = []
    pending: list[type[ZhikuError]] = [ZhikuError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(c for c in cls.__subclasses__() if c.__module__ == errors.__name__)
    return found


class Client:
    """The REST API of one zhiku server, as the CLI uses it. Every failure is a :class:`ZhikuError` with a
    one-line message: the server's own error, or :class:`ServerUnreachableError`."""

    def __init__(self, url: str, key: str | None = None, *, how: str = "") -> None:
        self.url = url.rstrip("/")
        self.how = how
        """How this server was found (for messages): ``ZHIKU_URL`` or the discovery file."""
        headers = {"authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT, trust_env=False)

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _unreachable(self, exc: Exception) -> ServerUnreachableError:
        hint = "unset ZHIKU_URL to work without it" if self.how == "ZHIKU_URL" else "is it still running?"
        reason = str(exc) or type(exc).__name__
        return ServerUnreachableError(f"cannot reach the zhiku server at {self.url} ({reason}); {hint}")

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request and return its JSON body (``None`` for 204); 429s are retried after ``Retry-After``."""
        for attempt in range(MAX_RETRIES_429 + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise self._unreachable(exc) from None
            if response.status_code == 429 and attempt < MAX_RETRIES_429:
                time.sleep(min(30.0, float(response.headers.get("retry-after") or 1)))
                continue
            break
        if response.status_code >= 400:
            raise _error_for(response, self.url)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ServerError(
                f"the server at {self.url} answered {path} with something that is not JSON: is it a zhiku server?",
                status_code=502,
                code="bad_response",
            ) from None

    def healthy(self) -> bool:
        """True when ``/healthz`` answers 200."""
        try:
            return self._http.get("/healthz", timeout=httpx.Timeout(5.0, connect=2.0)).status_code == 200
        except httpx.HTTPError:
            return False

    def check(self) -> None:
        """Raise :class:`ServerUnreachableError` unless the server answers."""
        try:
            response = self._http.get("/healthz", timeout=httpx.Timeout(10.0, connect=5.0))
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.status_code != 200:
            raise ServerUnreachableError(
                f"{self.url} answered /healthz with HTTP {response.status_code}: is it a zhiku server? "
                + ("unset ZHIKU_URL to work without it" if self.how == "ZHIKU_URL" else "")
            )

    # knowledge bases

    def create_knowledge_base(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a knowledge base (a ``KnowledgeBaseCreate`` body)."""
        return dict(self.request("POST", "/api/v1/knowledge-bases", json=body))

    def list_knowledge_bases(self) -> list[dict[str, Any]]:
        """The knowledge bases of the key's tenant, with counts."""
        return list(self.request("GET", "/api/v1/knowledge-bases"))

    def get_knowledge_base(self, name: str) -> dict[str, Any]:
        """One knowledge base by name or id."""
        return dict(self.request("GET", f"/api/v1/knowledge-bases/{_part(name)}"))

    def delete_knowledge_base(self, kb_id: str) -> None:
        """Delete a knowledge base and everything in it."""
        self.request("DELETE", f"/api/v1/knowledge-bases/{_part(kb_id)}")

    def search(self, kb_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """A search (a ``SearchRequest`` body)."""
        return dict(self.request("POST", f"/api/v1/knowledge-bases/{_part(kb_id)}/search", json=body))

    def reindex(self, kb_id: str, model: str | None, dimension: int | None) -> dict[str, Any]:
        """Start a re-index; returns its job."""
        body = {"model": model, "dimension": dimension}
        return dict(self.request("POST", f"/api/v1/knowledge-bases/{_part(kb_id)}/reindex", json=body))

    # documents

    def upload(
        self, kb_id: str, path: Path, name: str, *, tags: list[str] | None, metadata: dict[str, str] | None
    ) -> list[dict[str, Any]]:
        """Upload one file under the name ``name`` (its identity on the server); returns the upload outcomes."""
        data: dict[str, Any] = {}
        if tags:
            data["tags"] = tags
        if metadata:
            data["metadata"] = json.dumps(metadata)
        with path.open("rb") as stream:
            files = [("files", (name, stream, "application/octet-stream"))]
            return list(
                self.request(
                    "POST",
                    f"/api/v1/knowledge-bases/{_part(kb_id)}/documents",
                    files=files,
                    data=data,
                    timeout=UPLOAD_TIMEOUT,
                )
            )

    def list_documents(self, kb_id: str) -> list[dict[str, Any]]:
        """A knowledge base's documents, newest first."""
        return list(self.request("GET", f"/api/v1/knowledge-bases/{_part(kb_id)}/documents"))

    def get_document(self, kb_id: str, document_id: str) -> dict[str, Any]:
        """One document by id or unique prefix."""
        return dict(self.request("GET", f"/api/v1/knowledge-bases/{_part(kb_id)}/documents/{_part(document_id)}"))

    def label_document(self, kb_id: str, document_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Change a document's labels (a ``DocumentLabels`` body)."""
        path = f"/api/v1/knowledge-bases/{_part(kb_id)}/documents/{_part(document_id)}"
        return dict(self.request("PATCH", path, json=body))

    def similar_documents(self, kb_id: str, document_id: str, top_k: int) -> list[dict[str, Any]]:
        """The documents most like one document (``SimilarDocumentOut`` items), most similar first."""
        path = f"/api/v1/knowledge-bases/{_part(kb_id)}/documents/{_part(document_id)}/similar"
        return list(self.request("GET", path, params={"top_k": top_k}))

    def auto_tag_labels(self, kb_id: str, labels: list[dict[str, str]] | None = None) -> list[dict[str, str]]:
        """The knowledge base's auto-tag labels; replaced first by ``labels`` when given."""
        path = f"/api/v1/knowledge-bases/{_part(kb_id)}/auto-tags"
        if labels is None:
            return list(self.request("GET", path)["labels"])
        return list(self.request("PUT", path, json={"labels": labels})["labels"])

    def run_auto_tags(self, kb_id: str, min_confidence: float | None = None) -> dict[str, Any]:
        """Tag every ready document again with the labels (an ``AutoTagRunOut``)."""
        path = f"/api/v1/knowledge-bases/{_part(kb_id)}/auto-tags/run"
        return dict(self.request("POST", path, json={"min_confidence": min_confidence}))

    def delete_document(self, kb_id: str, document_id: str) -> None:
        """Delete a document."""
        self.request("DELETE", f"/api/v1/knowledge-bases/{_part(kb_id)}/documents/{_part(document_id)}")

    def duplicates(
        self,
        kb_id: str,
        *,
        level: str = "documents",
        threshold: float | None = None,
        kinds: list[str] | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        """A knowledge base's near-duplicate groups (``DuplicatesOut``)."""
        params: dict[str, Any] = {"level": level, "limit": limit}
        if threshold is not None:
            params["threshold"] = threshold
        if kinds:
            params["kinds"] = kinds
        path = f"/api/v1/knowledge-bases/{_part(kb_id)}/duplicates"
        return dict(self.request("GET", path, params=params, timeout=UPLOAD_TIMEOUT))

    def resolve_duplicates(self, kb_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Keep one document per near-duplicate group (a ``DuplicatesResolve`` body); what was kept and deleted."""
        path = f"/api/v1/knowledge-bases/{_part(kb_id)}/duplicates/resolve"
        return dict(self.request("POST", path, json=body, timeout=UPLOAD_TIMEOUT))

    # sources

    def topics(self, kb_id: str, clusters: int | None = None) -> dict[str, Any]:
        """The knowledge base's topic map (``GET .../topics``)."""
        params = {"clusters": clusters} if clusters is not None else {}
        result: dict[str, Any] = self.request("GET", f"/api/v1/knowledge-bases/{_part(kb_id)}/topics", params=params)
        return result

    def add_source(self, kb_id: str, url: str, ref: str | None = None) -> dict[str, Any]:
        """Add a git repository by URL and sync it; returns the source, whether it is new, and the sync."""
        body = {"url": url, "ref": ref, "sync": True}
        path = f"/api/v1/knowledge-bases/{_part(kb_id)}/sources"
        return dict(self.request("POST", path, json=body, timeout=UPLOAD_TIMEOUT))

    def list_sources(self, kb_id: str) -> list[dict[str, Any]]:
        """A knowledge base's sources."""
        return list(self.request("GET", f"/api/v1/knowledge-bases/{_part(kb_id)}/sources"))

    def sync_source(self, kb_id: str, source_id: str) -> dict[str, Any]:
        """Sync one source; returns what the sync did."""
        path = f"/api/v1/knowledge-bases/{_part(kb_id)}/sources/{_part(source_id)}/sync"
        return dict(self.request("POST", path, timeout=UPLOAD_TIMEOUT))

    def delete_source(self, kb_id: str, source_id: str, *, keep_documents: bool = False) -> None:
        """Forget a source (and delete its documents unless ``keep_documents``)."""
        path = f"/api/v1/knowledge-bases/{_part(kb_id)}/sources/{_part(source_id)}"
        self.request("DELETE", path, params={"keep_documents": str(keep_documents).lower()})

    # jobs

    def list_jobs(self, status: str | None = None, limit: int = 50, kb_id: str | None = None) -> list[dict[str, Any]]:
        """Newest jobs first."""
        params: dict[str, Any] = {"limit": max(1, min(limit, 1000))}
        if status:
            params["status"] = status
        if kb_id:
            params["knowledge_base_id"] = kb_id
        return list(self.request("GET", "/api/v1/jobs", params=params))

    def get_job(self, job_id: str) -> dict[str, Any]:
        """One job by id or unique prefix."""
        return dict(self.request("GET", f"/api/v1/jobs/{_part(job_id)}"))

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        """Cancel a job."""
        return dict(self.request("POST", f"/api/v1/jobs/{_part(job_id)}/cancel"))

    def retry_job(self, job_id: str) -> dict[str, Any]:
        """Queue a failed or cancelled job again."""
        return dict(self.request("POST", f"/api/v1/jobs/{_part(job_id)}/retry"))

    def job_events(self, kb_id: str) -> Generator[dict[str, Any], None, None]:
        """The jobs of a knowledge base as they change (its Server-Sent Events ``job``), until the caller stops."""
        path = f"/api/v1/knowledge-bases/{_part(kb_id)}/events"
        try:
            with self._http.stream("GET", path, timeout=STREAM_TIMEOUT) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error_for(response, self.url)
                event = ""
                data: list[str] = []
                for line in response.iter_lines():
                    if line.startswith(":"):
                        continue
                    if not line:
                        if event == "job" and data:
                            yield dict(json.loads("\n".join(data)))
                        event, data = "", []
                        continue
                    field, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if field == "event":
                        event = value
                    elif field == "data":
                        data.append(value)
        except httpx.TransportError as exc:
            raise ServerUnreachableError(
                f"the zhiku server at {self.url} stopped answering ({str(exc) or type(exc).__name__}); "
                "the jobs go on if it is still running: `zhiku jobs list` shows them"
            ) from None
        raise ServerUnreachableError(f"the zhiku server at {self.url} closed the event stream; is it stopping?")


def _part(value: str) -> str:
    """A path segment, quoted (names may hold spaces, '/', any script)."""
    return quote(value, safe="")


def wait_until_answering(client: Client, pid: int, seconds: float) -> bool:
    """Wait while process ``pid`` lives for ``client``'s server to answer (it loads its models before it
    listens); True once it does."""
    deadline = time.monotonic() + seconds
    while True:
        if client.healthy():
            return True
        if time.monotonic() >= deadline or not process_alive(pid):
            return False
        time.sleep(0.5)
