"""Exceptions of the qvm SDK.

Every error the SDK raises is a QvmError. qvmd's answers of status 400 and
above are ApiError (a subclass per status) carrying the problem+json fields
(RFC 9457, docs/qvmd.md "Errors"); a qvmd that cannot be reached is
QvmConnectionError; an answer that is too large, malformed or late is
ResponseError / ResponseTooLarge / QvmTimeout.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Type

# What a message may quote of a server's text: it is untrusted (a guest's
# name, a proxy's error page), so it is cut short and made printable.
_QUOTE_MAX = 200


def printable(text: str, limit: int = _QUOTE_MAX) -> str:
    """text with control characters escaped, cut to limit characters."""
    out = []
    for ch in text[:limit]:
        if ch.isprintable() or ch == " ":
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    if len(text) > limit:
        out.append("...")
    return "".join(out)


class QvmError(Exception):
    """The base of every exception the SDK raises."""


class QvmConnectionError(QvmError):
    """qvmd could not be reached (no socket, refused, reset)."""


class QvmTimeout(QvmError):
    """A call did not finish within its timeout (the connection is closed)."""


class ResponseError(QvmError):
    """qvmd's answer is not what the API promises (bad JSON, wrong type)."""


class ResponseTooLarge(ResponseError):
    """The answer's body is over the client's cap (max_body); it was not read."""


class ApiError(QvmError):
    """An error answer of qvmd: application/problem+json.

    status: the HTTP status; code: libqvm's error code name (EEXISTS, ...) or
    qvmd's (NotFound, Validation, ...); title, detail: what happened;
    field: the request member a 422 is about; error_class: libqvm's error
    class (VmRunning, ...); retry_after: seconds, for 429 and 503.
    """

    def __init__(
        self,
        status: int,
        code: str = "",
        title: str = "",
        detail: str = "",
        field: Optional[str] = None,
        error_class: Optional[str] = None,
        type: str = "",
        retry_after: Optional[int] = None,
    ) -> None:
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.field = field
        self.error_class = error_class
        self.type = type
        self.retry_after = retry_after
        super().__init__(self._message())

    def _message(self) -> str:
        msg = f"qvmd: {self.status}"
        if self.code:
            msg += f" {printable(self.code, 64)}"
        if self.detail:
            msg += f": {printable(self.detail)}"
        elif self.title:
            msg += f": {printable(self.title)}"
        if self.field:
            msg += f" (field '{printable(self.field, 64)}')"
        return msg


class BadRequest(ApiError):
    """400: the body is not one strict JSON object."""


class Unauthorized(ApiError):
    """401: no bearer token, or not a known one."""


class Forbidden(ApiError):
    """403: the token's scope does not allow this (a read token writing)."""


class NotFound(ApiError):
    """404: no such route, VM or sandbox (or not this agent token's)."""


class MethodNotAllowed(ApiError):
    """405."""


class Conflict(ApiError):
    """409: the name is taken, or the VM's state does not allow it."""


class PayloadTooLarge(ApiError):
    """413: the request body is over qvmd's cap (1 MiB)."""


class UnsupportedMediaType(ApiError):
    """415."""


class ValidationError(ApiError):
    """422: a member failed its check; field names it."""


class RateLimited(ApiError):
    """429: the token is over its rate; retry_after says when to try again."""


class UpstreamError(ApiError):
    """502: QEMU, the guest or its SSH failed."""


class Unavailable(ApiError):
    """503: qvmd is busy (retry_after) or the host lacks something."""


class GatewayTimeout(ApiError):
    """504: a bounded wait ran out on qvmd's side (exec's timeout, a start)."""


_BY_STATUS: Dict[int, Type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: ValidationError,
    429: RateLimited,
    502: UpstreamError,
    503: Unavailable,
    504: GatewayTimeout,
}


def _str_member(doc: Dict[str, Any], key: str) -> Optional[str]:
    v = doc.get(key)
    return v if isinstance(v, str) else None


def api_error(status: int, doc: Optional[Dict[str, Any]], text: str,
              retry_after: Optional[int]) -> ApiError:
    """The exception for an error answer: doc is its parsed problem+json
    object (None when the body was not one), text the body as text."""
    cls = _BY_STATUS.get(status, ApiError)
    if doc is None:
        return cls(status, detail=text, retry_after=retry_after)
    return cls(
        status,
        code=_str_member(doc, "code") or "",
        title=_str_member(doc, "title") or "",
        detail=_str_member(doc, "detail") or "",
        field=_str_member(doc, "field"),
        error_class=_str_member(doc, "class"),
        type=_str_member(doc, "type") or "",
        retry_after=retry_after,
    )
