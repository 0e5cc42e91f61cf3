"""One exception hierarchy for zhiku.

Every error a user can cause or meet derives from :class:`ZhikuError`. Each class carries the HTTP status
and a stable machine-readable ``code`` so that the API layer maps them to problem responses in one place,
and the CLI prints the message without a traceback.
"""

from __future__ import annotations


class ZhikuError(Exception):
    """Base class of all zhiku errors."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class ConfigError(ZhikuError):
    """The settings are inconsistent or name something that does not exist."""

    status_code = 500
    code = "config_error"


class InvalidInputError(ZhikuError):
    """The caller sent input that can never succeed (wrong type, empty, NUL bytes, ...)."""

    status_code = 400
    code = "invalid_input"


class InputTooLongError(InvalidInputError):
    """An input exceeds a size limit (characters, or tokens with ``truncate="error"``)."""

    status_code = 413
    code = "input_too_long"


class DimensionError(InvalidInputError):
    """A requested embedding dimension is outside what the model supports."""

    code = "invalid_dimensions"


class UnknownModelError(ZhikuError):
    """A model name is neither in the registry nor a loadable local folder."""

    status_code = 404
    code = "model_not_found"


class ModelLoadError(ZhikuError):
    """A known model could not be loaded (missing weights, offline, corrupt files)."""

    status_code = 503
    code = "model_unavailable"


class RemoteEmbeddingError(ZhikuError):
    """An OpenAI-compatible upstream failed; the message names the URL and the cause."""

    status_code = 502
    code = "upstream_error"

    def __init__(self, message: str, *, url: str, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.upstream_status = upstream_status


class DocumentError(InvalidInputError):
    """A document cannot be ingested; the message says why in terms the uploader understands."""

    status_code = 422
    code = "document_error"


class UnsupportedTypeError(DocumentError):
    """The content is not a type zhiku parses (checked from the bytes, not only the extension)."""

    status_code = 415
    code = "unsupported_type"


class EncryptedDocumentError(DocumentError):
    """The document is password-protected."""

    code = "encrypted_document"


class CorruptDocumentError(DocumentError):
    """The document is damaged or not what its type claims."""

    code = "corrupt_document"


class EmptyDocumentError(DocumentError):
    """The document has no extractable text (empty file, or only images that need OCR)."""

    code = "empty_document"


class FileTooLargeError(DocumentError):
    """The file exceeds the configured size limit."""

    status_code = 413
    code = "file_too_large"


class DocumentTooLargeError(DocumentError):
    """Parsing the document would exceed the ingestion budget (characters, memory or time)."""

    status_code = 413
    code = "document_too_large"


class NotFoundError(ZhikuError):
    """A knowledge base, document or job does not exist (or belongs to another tenant)."""

    status_code = 404
    code = "not_found"


class ConflictError(ZhikuError):
    """The request conflicts with the current state (e.g. a knowledge base name already taken)."""

    status_code = 409
    code = "conflict"


class AmbiguousIdError(ConflictError):
    """An id prefix matches more than one row; the caller must give more characters (409)."""

    code = "ambiguous_id"


class OverloadedError(ZhikuError):
    """Too much work is already waiting; the caller should retry after ``retry_after`` seconds."""

    status_code = 429
    code = "server_overloaded"

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLargeError(InvalidInputError):
    """A request body is over the size limit."""

    status_code = 413
    code = "request_too_large"


class AuthenticationError(ZhikuError):
    """No API key, or one that is unknown or revoked."""

    status_code = 401
    code = "invalid_api_key"


class PermissionDeniedError(ZhikuError):
    """The key is valid but its scope does not allow this."""

    status_code = 403
    code = "insufficient_scope"


class QuotaExceededError(ZhikuError):
    """The tenant's storage quota would be exceeded."""

    status_code = 413
    code = "quota_exceeded"


class NotConfiguredError(ZhikuError):
    """A feature needs settings that are not set; the message says which."""

    status_code = 501
    code = "not_configured"


class ChatUpstreamError(ZhikuError):
    """The configured chat model's server failed; the message says how."""

    status_code = 502
    code = "upstream_error"


class VectorStoreError(ZhikuError):
    """The vector store failed on an operation that should have worked (I/O, a corrupt or closed collection)."""

    status_code = 500
    code = "vector_store_error"


class SourceFetchError(ZhikuError):
    """A source (a git repository) could not be fetched or read: unreachable, not a repository, too big, too slow."""

    status_code = 422
    code = "source_fetch_failed"
