"""The SDK's own bounds, against a fake qvmd on 127.0.0.1 (and on a UNIX
socket) that answers badly: too large, malformed, wrong types, too slow,
dripping, nothing at all. Each must be a clear QvmError, quickly: never a
hang, a MemoryError or a crash of another kind."""

import os
import socket
import tempfile
import threading
import time

import pytest

import qvm


class FakeServer:
    """Accepts connections on 127.0.0.1 (or a UNIX socket) and answers each
    with the bytes `script(conn)` sends after reading the request (its head
    and Content-Length bytes of body, kept in requests)."""

    def __init__(self, script, unix_path=None):
        self.script = script
        if unix_path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(unix_path)
            self.url = None
        else:
            self.sock = socket.socket()
            self.sock.bind(("127.0.0.1", 0))
            self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.sock.listen(8)
        self.requests = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        try:
            conn.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                d = conn.recv(4096)
                if not d:
                    break
                head += d
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            want = head.index(b"\r\n\r\n") + 4 + length if b"\r\n\r\n" in head else 0
            while len(head) < want:
                d = conn.recv(4096)
                if not d:
                    break
                head += d
            self.requests.append(head)
            self.script(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def answer(status, body, ctype="application/json", extra=b"", length=True):
    if isinstance(body, str):
        body = body.encode()
    head = b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nConnection: close\r\n" % (status, ctype.encode())
    if length:
        head += b"Content-Length: %d\r\n" % len(body)
    return head + extra + b"\r\n" + body


@pytest.fixture
def serve():
    servers = []

    def make(script, **kw):
        s = FakeServer(script, **kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def client_for(srv, **kw):
    kw.setdefault("token", "t" * 20)
    return qvm.QvmClient(base_url=srv.url, **kw)


def timed(fn):
    t0 = time.monotonic()
    try:
        fn()
    finally:
        timed.elapsed = time.monotonic() - t0


def test_a_good_answer_and_the_token(serve):
    srv = serve(lambda c: c.sendall(answer(200, '[{"name": "a", "state": "running", '
                                                '"labels": {"k": "v"}, "memoryMib": 256}]')))
    vms = client_for(srv).vms.list()
    assert vms == [qvm.Vm(name="a", state="running", labels={"k": "v"}, memory_mib=256)]
    assert b"Authorization: Bearer " + b"t" * 20 in srv.requests[0]
    assert srv.requests[0].startswith(b"GET /api/v1/vms HTTP/1.1")


def test_names_are_quoted_into_the_path(serve):
    srv = serve(lambda c: c.sendall(answer(404, '{"status": 404, "code": "NotFound"}',
                                           "application/problem+json")))
    with pytest.raises(qvm.NotFound):
        client_for(srv).vms.get("../x?y")
    assert srv.requests[0].startswith(b"GET /api/v1/vms/..%2Fx%3Fy HTTP/1.1")


def test_declared_length_over_the_cap_is_refused_unread(serve):
    def script(c):
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 99999999999\r\n\r\n[")
        time.sleep(3)
    srv = serve(script)
    cl = client_for(srv, max_body=1 << 20, timeout=10)
    with pytest.raises(qvm.ResponseTooLarge, match="99999999999 bytes, over the cap"):
        timed(cl.vms.list)
    assert timed.elapsed < 2


def test_a_chunked_body_over_the_cap_is_cut_off(serve):
    def script(c):
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
        try:
            for _ in range(1000):  # 64 MiB if nobody stops reading
                c.sendall(chunk)
        except OSError:
            pass
    srv = serve(script)
    with pytest.raises(qvm.ResponseTooLarge, match="over the cap of 1048576"):
        client_for(srv, max_body=1 << 20).vms.list()


def test_a_body_without_length_over_the_cap_is_cut_off(serve):
    def script(c):
        c.sendall(answer(200, b"", length=False))
        try:
            for _ in range(200):
                c.sendall(b"[" * 65536)
        except OSError:
            pass
    srv = serve(script)
    with pytest.raises(qvm.ResponseTooLarge):
        client_for(srv, max_body=1 << 20).vms.list()


def test_deeply_nested_json_is_a_response_error(serve):
    body = "[" * 200000 + "]" * 200000
    srv = serve(lambda c: c.sendall(answer(200, body)))
    with pytest.raises(qvm.ResponseError, match="nested too deep|not valid JSON"):
        client_for(srv).vms.list()


@pytest.mark.parametrize("body,ctype,match", [
    ("{not json", "application/json", "not valid JSON"),
    ('{"name": "a", "state": "running"}', "application/json", "expected a JSON array"),
    ('[{"name": 7, "state": "running"}]', "application/json", "'name' is not str"),
    ('[{"name": "a"}]', "application/json", "'state' is missing"),
    ('[{"name": "a", "state": "x", "cpus": true}]', "application/json", "'cpus' is not an integer"),
    ('[{"name": "a", "state": "x", "labels": {"k": 1}}]', "application/json", "label 'k'"),
    (b'["\xff"]', "application/json", "not UTF-8"),
    ("<html>hi</html>", "text/html", "not application/json"),
])
def test_malformed_answers(serve, body, ctype, match):
    srv = serve(lambda c: c.sendall(answer(200, body, ctype)))
    with pytest.raises(qvm.ResponseError, match=match):
        client_for(srv).vms.list()


def test_a_bad_exec_result(serve):
    srv = serve(lambda c: c.sendall(answer(200, '{"exitCode": 0, "signal": null, "stdout": "", '
                                                '"stderr": "", "durationMs": 1, '
                                                '"stdoutBase64": "!!"}')))
    with pytest.raises(qvm.ResponseError, match="stdoutBase64"):
        client_for(srv).vms.exec("a", ["true"])


def test_a_problem_document_becomes_its_exception(serve):
    doc = ('{"type": "urn:qvm:problem:Validation", "title": "Unprocessable", "status": 422, '
           '"detail": "bad \\u001b[31m name", "code": "Validation", "field": "name"}')
    srv = serve(lambda c: c.sendall(answer(422, doc, "application/problem+json")))
    with pytest.raises(qvm.ValidationError) as ei:
        client_for(srv).vms.create("A")
    e = ei.value
    assert (e.status, e.code, e.field, e.title) == (422, "Validation", "name", "Unprocessable")
    assert "\x1b" not in str(e) and "\\x1b" in str(e)


def test_an_error_that_is_no_problem_document(serve):
    srv = serve(lambda c: c.sendall(answer(503, "<h1>bad gateway</h1>", "text/html",
                                           extra=b"Retry-After: 7\r\n")))
    with pytest.raises(qvm.Unavailable) as ei:
        client_for(srv).vms.list()
    assert ei.value.status == 503 and ei.value.code == "" and ei.value.retry_after == 7


def test_no_answer_at_all_times_out(serve):
    srv = serve(lambda c: time.sleep(5))
    with pytest.raises(qvm.QvmTimeout):
        timed(client_for(srv, timeout=1).vms.list)
    assert timed.elapsed < 3


def test_a_dripping_server_is_cut_at_the_deadline(serve):
    def script(c):
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        for _ in range(100):  # a header byte every 0.2 s: each read is quick
            c.sendall(b"X")
            time.sleep(0.2)
    srv = serve(script)
    with pytest.raises(qvm.QvmTimeout):
        timed(client_for(srv, timeout=1.5).vms.list)
    assert timed.elapsed < 3


def test_a_dripping_body_without_length_is_a_timeout_not_a_short_answer(serve):
    def script(c):
        c.sendall(answer(200, b"", length=False))
        for _ in range(100):
            c.sendall(b" ")
            time.sleep(0.2)
    srv = serve(script)
    with pytest.raises(qvm.QvmTimeout):
        timed(client_for(srv, timeout=1.5).vms.list)
    assert timed.elapsed < 3


def test_a_short_body_is_a_response_error(serve):
    srv = serve(lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                    b"Content-Length: 100\r\n\r\n[1, 2"))
    with pytest.raises(qvm.ResponseError):
        client_for(srv).vms.list()


def test_garbage_instead_of_http(serve):
    srv = serve(lambda c: c.sendall(b"SSH-2.0-OpenSSH\r\n\r\n"))
    with pytest.raises(qvm.QvmError):
        client_for(srv).vms.list()


def test_a_huge_header_line(serve):
    srv = serve(lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 200000 + b"\r\n\r\n"))
    with pytest.raises(qvm.ResponseError):
        client_for(srv).vms.list()


def test_over_the_unix_socket(serve):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "qvmd.sock")
        srv = serve(lambda c: c.sendall(answer(200, '[{"name": "s1", "agent": "a", '
                                                    '"expiresAtUs": 5}]')), unix_path=path)
        sbs = qvm.QvmClient(path).sandbox.list_sandboxes()
        assert sbs == [qvm.Sandbox(name="s1", agent="a", expires_at_us=5)]
        assert b"Authorization" not in srv.requests[0]


def test_the_default_socket_path(monkeypatch):
    for k in ("QVM_QVMD_SOCKET", "QVM_RUNTIME_DIR", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(k, raising=False)
    assert qvm.default_socket_path() == "/run/qvm/qvmd.sock"
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/7")
    assert qvm.default_socket_path() == "/run/user/7/qvm/qvmd.sock"
    monkeypatch.setenv("QVM_RUNTIME_DIR", "/r")
    assert qvm.default_socket_path() == "/r/qvmd.sock"
    monkeypatch.setenv("QVM_QVMD_SOCKET", "/s.sock")
    assert qvm.default_socket_path() == "/s.sock"


def test_no_qvmd_is_a_connection_error():
    with tempfile.TemporaryDirectory() as d:
        with pytest.raises(qvm.QvmConnectionError, match="is qvmd running"):
            qvm.QvmClient(os.path.join(d, "none.sock")).vms.list()


def test_bad_arguments_are_value_errors():
    c = qvm.QvmClient(base_url="http://127.0.0.1:1", token="x" * 16)
    with pytest.raises(ValueError):
        qvm.QvmClient(base_url="http://127.0.0.1:1", token="bad\r\nX-Inject: 1xxxxxxxx")
    with pytest.raises(ValueError):
        qvm.QvmClient("/s", token="x" * 16)
    with pytest.raises(ValueError):
        qvm.QvmClient(base_url="ftp://h/")
    with pytest.raises(ValueError):
        c.vms.exec("a", [])
    with pytest.raises(ValueError):
        c.vms.exec("a", ["x"] * 257)
    with pytest.raises(ValueError):
        c.sandbox.run_sandbox_command("a", "true", timeout=0)
    with pytest.raises(ValueError):
        c.sandbox.create_sandbox()
    with pytest.raises(ValueError):
        c.vms.get("")


@pytest.mark.parametrize("body,match", [
    ('{"source": "a", "forks": {"name": "x"}}', "'forks' is not list"),
    ('{"source": "a", "forks": [{"sshPort": 22}]}', "'name' is missing"),
    ('{"forks": []}', "'source' is missing"),
])
def test_a_bad_fork_result(serve, body, match):
    srv = serve(lambda c: c.sendall(answer(201, body)))
    with pytest.raises(qvm.ResponseError, match=match):
        client_for(srv).vms.fork("a", count=1)


def test_snapshot_calls_and_their_answers(serve):
    answers = iter([
        answer(201, '{"name": "ckpt-3", "ram": true, "current": true, "vmStateSize": 5}'),
        answer(200, '{"name": "sb", "restored": "ckpt-2"}'),
        answer(200, '{"name": "sb", "restored": 7}'),
    ])
    srv = serve(lambda c: c.sendall(next(answers)))
    cl = client_for(srv)
    assert cl.sandbox.create_snapshot("sb") == qvm.Snapshot(name="ckpt-3", ram=True, current=True,
                                                            vm_state_size=5)
    assert cl.sandbox.rollback("sb", to=2) == qvm.Restored(name="sb", restored="ckpt-2")
    with pytest.raises(qvm.ResponseError, match="'restored' is not str"):
        cl.sandbox.rollback("sb")
    assert srv.requests[0].startswith(b"POST /api/v1/sandboxes/sb/checkpoint ")
    assert srv.requests[1].startswith(b"POST /api/v1/sandboxes/sb/rollback ")
    assert srv.requests[1].endswith(b'{"to": "2"}')
    assert b"Content-Length: 0\r\n" in srv.requests[2]
    with pytest.raises(ValueError):
        cl.sandbox.rollback("sb", to=True)
