"""HTTP to qvmd over its UNIX socket or TCP (http.client), with a deadline
on every call and a cap on every body read.

qvmd (or whatever answers on its address) is not trusted to be well
behaved: an answer larger than max_body is refused before it is read (by
its Content-Length) or as it arrives (chunked, or no length), headers are
bounded by http.client (64 KiB a line, 100 lines), and a server that
drips bytes cannot hold a call past its deadline: a timer shuts the socket
down then.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import ssl
import threading
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlsplit

from .errors import (
    QvmConnectionError,
    QvmTimeout,
    ResponseError,
    ResponseTooLarge,
    api_error,
    printable,
)

DEFAULT_MAX_BODY = 64 << 20
_CHUNK = 1 << 16
_USER_AGENT = "qvm-python/0.1.0"


def default_socket_path() -> str:
    """Where qvmd listens by default (docs/qvmd.md): $QVM_QVMD_SOCKET, else
    qvmd.sock in $QVM_RUNTIME_DIR, else $XDG_RUNTIME_DIR/qvm, else /run/qvm."""
    path = os.environ.get("QVM_QVMD_SOCKET")
    if path:
        return path
    d = os.environ.get("QVM_RUNTIME_DIR")
    if not d:
        xdg = os.environ.get("XDG_RUNTIME_DIR")
        d = os.path.join(xdg, "qvm") if xdg else "/run/qvm"
    return os.path.join(d, "qvmd.sock")


class UnixHTTPConnection(http.client.HTTPConnection):
    """An HTTPConnection to a UNIX stream socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("qvmd", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(self.timeout)
            s.connect(self.socket_path)
        except BaseException:
            s.close()
            raise
        self.sock = s


class Transport:
    """One request per connection: simple, and safe to share between threads."""

    def __init__(
        self,
        socket_path: Optional[str] = None,
        base_url: Optional[str] = None,
        token: Optional[str] = None,
        max_body: int = DEFAULT_MAX_BODY,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        if max_body < 1024:
            raise ValueError("max_body must be at least 1024 bytes")
        self.max_body = max_body
        self.token = token
        self.socket_path: Optional[str] = None
        self._tcp: Optional[Tuple[str, str, int, str]] = None
        self._ssl_context = ssl_context
        if base_url is not None:
            u = urlsplit(base_url)
            if u.scheme not in ("http", "https") or not u.hostname:
                raise ValueError(f"base_url must be http://HOST:PORT or https://...: '{base_url}'")
            if u.query or u.fragment or u.username or u.password:
                raise ValueError("base_url takes no query, fragment or credentials (use token=)")
            port = u.port or (443 if u.scheme == "https" else 80)
            self._tcp = (u.scheme, u.hostname, port, u.path.rstrip("/"))
        else:
            self.socket_path = socket_path or default_socket_path()

    def where(self) -> str:
        if self._tcp:
            scheme, host, port, prefix = self._tcp
            return f"{scheme}://{host}:{port}{prefix}"
        return f"unix:{self.socket_path}"

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._tcp is None:
            assert self.socket_path is not None
            return UnixHTTPConnection(self.socket_path, timeout)
        scheme, host, port, _ = self._tcp
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=timeout,
                                               context=self._ssl_context)
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: Optional[Dict[str, Any]] = None,
        timeout: float = 30.0,
    ) -> Tuple[int, Any]:
        """Sends one request; returns (status, parsed JSON or None for an
        empty body) for a 2xx answer and raises ApiError for an error one."""
        data, headers = self._json_body(body, "application/json")
        with self._exchange(method, path, data, headers, timeout) as (resp, expired):
            return self._answer(resp, method, path, expired, timeout)

    def request_bytes(
        self,
        method: str,
        path: str,
        data: Optional[bytes] = None,
        timeout: float = 30.0,
    ) -> Tuple[int, bytes, str]:
        """Sends raw bytes (application/octet-stream) or nothing; returns
        (status, the answer's bytes (at most max_body), its content type)
        for a 2xx answer and raises ApiError for an error one."""
        headers = {"Accept": "application/octet-stream, application/json",
                   "User-Agent": _USER_AGENT}
        if data is not None:
            headers["Content-Type"] = "application/octet-stream"
        with self._exchange(method, path, data, headers, timeout) as (resp, expired):
            self._raise_for_status(resp, method, path)
            raw = self._read_body(resp, method, path)
            if expired.is_set():
                raise QvmTimeout(
                    f"{method} {path}: qvmd's answer did not finish within {timeout:g} s")
            ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
            return resp.status, raw, ctype

    def stream_lines(
        self,
        method: str,
        path: str,
        body: Optional[Dict[str, Any]] = None,
        timeout: float = 30.0,
        max_line: int = 1 << 20,
    ) -> Iterator[bytes]:
        """Sends one request and yields the answer's non-empty lines
        (application/x-ndjson) as they arrive, each at most max_line bytes
        (ResponseTooLarge above). timeout bounds the whole stream. Closing
        the generator early closes the connection."""
        data, headers = self._json_body(body, "application/x-ndjson")
        with self._exchange(method, path, data, headers, timeout) as (resp, expired):
            self._raise_for_status(resp, method, path)
            ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/x-ndjson":
                raise ResponseError(f"{method} {path}: the answer is '{printable(ctype, 64)}', "
                                    "not application/x-ndjson")
            while True:
                line = resp.readline(max_line + 1)
                if expired.is_set():
                    raise QvmTimeout(
                        f"{method} {path}: qvmd's stream did not finish within {timeout:g} s")
                if not line:
                    return
                if len(line) > max_line:
                    raise ResponseTooLarge(
                        f"{method} {path}: a line of the stream is over {max_line} bytes")
                line = line.strip()
                if line:
                    yield line

    def _json_body(self, body: Optional[Dict[str, Any]],
                   accept: str) -> Tuple[Optional[bytes], Dict[str, str]]:
        headers = {"Accept": accept, "User-Agent": _USER_AGENT}
        data = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        return data, headers

    @contextlib.contextmanager
    def _exchange(self, method: str, path: str, data: Optional[bytes], headers: Dict[str, str],
                  timeout: float) -> Iterator[Tuple[http.client.HTTPResponse, threading.Event]]:
        """Connects, sends, and gives the response (its head read) to the
        body of the with; maps socket and HTTP errors to QvmError; closes."""
        if not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds")
        if self._tcp is not None:
            path = self._tcp[3] + path
            if self.token:
                headers["Authorization"] = "Bearer " + self.token
        conn = self._connection(timeout)
        expired = threading.Event()
        # The socket itself: http.client drops conn.sock once a response
        # that ends at EOF is under way, but the response still reads it.
        socks: List[socket.socket] = []

        def cut() -> None:
            # A server that drips bytes would keep every read under the
            # socket timeout: at the deadline the socket is shut down.
            expired.set()
            for sock in socks:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        timer = threading.Timer(timeout, cut)
        timer.daemon = True
        timer.start()
        try:
            try:
                conn.connect()
            except (ConnectionError, FileNotFoundError, PermissionError, socket.gaierror) as e:
                raise QvmConnectionError(
                    f"cannot reach qvmd at {self.where()}: {e.strerror or e}: is qvmd running?"
                ) from e
            assert conn.sock is not None
            socks.append(conn.sock)
            if expired.is_set():
                raise socket.timeout("connect")
            conn.request(method, path, body=data, headers=headers)
            yield conn.getresponse(), expired
        except (socket.timeout, TimeoutError) as e:
            raise QvmTimeout(f"{method} {path}: no answer from qvmd within {timeout:g} s") from e
        except (OSError, http.client.HTTPException) as e:
            if expired.is_set():
                raise QvmTimeout(
                    f"{method} {path}: qvmd's answer did not finish within {timeout:g} s") from e
            if isinstance(e, OSError) and not isinstance(e, ConnectionError):
                raise QvmConnectionError(f"{method} {path}: {e}") from e
            if isinstance(e, ConnectionError):
                raise QvmConnectionError(f"{method} {path}: the connection broke: {e}") from e
            raise ResponseError(f"{method} {path}: not a valid HTTP answer: {printable(str(e))}") from e
        finally:
            timer.cancel()
            conn.close()

    def _raise_for_status(self, resp: http.client.HTTPResponse, method: str, path: str) -> None:
        """An error answer (its body read, bounded) as ApiError."""
        if 200 <= resp.status < 300:
            return
        raw = self._read_body(resp, method, path) if resp.status >= 400 else b""
        ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
        self._check_error(resp, resp.status, raw, ctype, method, path)
        raise ResponseError(f"{method} {path}: unexpected status {resp.status}")

    def _answer(self, resp: http.client.HTTPResponse, method: str, path: str,
                expired: threading.Event, timeout: float) -> Tuple[int, Any]:
        status = resp.status
        raw = self._read_body(resp, method, path)
        if expired.is_set():
            # A body without a length ends at EOF, which the cut looks like.
            raise QvmTimeout(f"{method} {path}: qvmd's answer did not finish within {timeout:g} s")
        ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
        self._check_error(resp, status, raw, ctype, method, path)
        if status < 200 or status >= 300:
            raise ResponseError(f"{method} {path}: unexpected status {status}")
        if not raw:
            return status, None
        if ctype != "application/json":
            raise ResponseError(
                f"{method} {path}: the answer is '{printable(ctype, 64)}', not application/json")
        try:
            return status, json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ResponseError(f"{method} {path}: the answer is not UTF-8") from e
        except RecursionError as e:
            raise ResponseError(f"{method} {path}: the answer's JSON is nested too deep") from e
        except ValueError as e:
            raise ResponseError(f"{method} {path}: the answer is not valid JSON: {e}") from e

    def _check_error(self, resp: http.client.HTTPResponse, status: int, raw: bytes, ctype: str,
                     method: str, path: str) -> None:
        if status >= 400:
            retry_after = None
            ra = resp.getheader("Retry-After")
            if ra and ra.isdigit() and len(ra) < 10:
                retry_after = int(ra)
            doc = None
            if ctype in ("application/problem+json", "application/json"):
                try:
                    parsed = json.loads(raw.decode("utf-8"))
                    if isinstance(parsed, dict):
                        doc = parsed
                except (ValueError, RecursionError):
                    doc = None
            text = raw.decode("utf-8", errors="replace")
            raise api_error(status, doc, text, retry_after)

    def _read_body(self, resp: http.client.HTTPResponse, method: str, path: str) -> bytes:
        cap = self.max_body
        length = resp.getheader("Content-Length")
        if length is not None:
            length = length.strip()
            if not length.isdigit() or len(length) > 20:
                raise ResponseError(
                    f"{method} {path}: bad Content-Length '{printable(length, 32)}'")
            if int(length) > cap:
                raise ResponseTooLarge(
                    f"{method} {path}: the answer is {int(length)} bytes, over the cap of {cap} "
                    "(max_body)")
        body = bytearray()
        while True:
            chunk = resp.read(min(_CHUNK, cap + 1 - len(body)))
            if not chunk:
                break
            body += chunk
            if len(body) > cap:
                raise ResponseTooLarge(
                    f"{method} {path}: the answer is over the cap of {cap} bytes (max_body)")
        return bytes(body)
