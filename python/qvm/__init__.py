"""qvm: a client for qvmd, qvm's REST API (docs/qvmd.md). Standard library only."""

from .client import (AuditApi, ImagesApi, OperationsApi, QvmClient, ReviewsApi, SandboxApi,
                     SshKeysApi, VmsApi)
from .errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    GatewayTimeout,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    QvmConnectionError,
    QvmError,
    QvmTimeout,
    RateLimited,
    ResponseError,
    ResponseTooLarge,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    UpstreamError,
    ValidationError,
)
from .models import (AuditRecord, CloneResult, Console, ExecFrame, ExecResult, Fork, ForkResult,
                     Image, Operation, PlaybookFile, Restored, Review, Sandbox, Snapshot, SshKey, Vm,
                     VmAddress)
from .transport import DEFAULT_MAX_BODY, default_socket_path

__version__ = "0.1.0"

__all__ = [
    "QvmClient", "VmsApi", "SandboxApi", "AuditApi", "SshKeysApi", "OperationsApi", "ImagesApi",
    "ReviewsApi", "Operation", "Image", "Review", "PlaybookFile",
    "Vm", "Sandbox", "ExecResult", "AuditRecord", "Snapshot", "Restored", "CloneResult", "SshKey",
    "Fork", "ForkResult", "ExecFrame", "VmAddress", "Console",
    "QvmError", "QvmConnectionError", "QvmTimeout", "ResponseError", "ResponseTooLarge",
    "ApiError", "BadRequest", "Unauthorized", "Forbidden", "NotFound", "MethodNotAllowed",
    "Conflict", "PayloadTooLarge", "UnsupportedMediaType", "ValidationError", "RateLimited",
    "UpstreamError", "Unavailable", "GatewayTimeout",
    "DEFAULT_MAX_BODY", "default_socket_path",
]
