"""The SDK's streams and files against a real qvmd (tests/python/run.sh)
and the mini guest: a sandbox of agent-a; a command streamed frame by frame
(in order, the exit last, output that is not UTF-8 exact in bytes, the
1 MiB cut); leaving a stream early; a binary file up and down; bad paths;
the address and the console; agent-b's 404s. The tests run in order."""

import hashlib
import os

import pytest
from conftest import ENV, create_mini, wait_ready

import qvm

pytestmark = pytest.mark.skipif("QVM_TEST_SOCK" not in ENV,
                                reason="run through tests/python/run.sh qvmd")


def test_a_sandbox(root, agent_a):
    create_mini(root, "gold-s", labels={"golden": "true"})
    sb = agent_a.sandbox.create_sandbox(source="gold-s", name="sb-s", ttl="10m",
                                        wait_cloud_init=False, timeout=180)
    assert sb.state == "running"
    wait_ready("sb-s")


def test_run_sandbox_command_stream(agent_a):
    frames = list(agent_a.sandbox.run_sandbox_command_stream(
        "sb-s", "echo one; sleep 0.3; echo two >&2; sleep 0.3; printf 'x\\377y'; exit 4", timeout=60))
    assert all(isinstance(f, qvm.ExecFrame) for f in frames)
    kinds = [f.kind for f in frames]
    assert kinds[:2] == ["stdout", "stderr"] and kinds[-1] == "exit", kinds
    assert kinds.count("exit") == 1
    out = b"".join(f.data for f in frames if f.kind == "stdout")
    assert out == b"one\nx\xffy"
    assert b"".join(f.data for f in frames if f.kind == "stderr") == b"two\n"
    assert (frames[-1].exit_code, frames[-1].signal, frames[-1].ok) == (4, None, False)


def test_a_long_stream_is_cut(root):
    frames = list(root.vms.exec_stream("sb-s", "head -c 2000000 /dev/zero", timeout=120))
    assert sum(len(f.data) for f in frames if f.kind == "stdout") == 1 << 20
    assert [f.stream for f in frames if f.kind == "truncated"] == ["stdout"]
    assert frames[-1].ok


def test_leaving_a_stream_early(agent_a):
    it = agent_a.sandbox.run_sandbox_command_stream(
        "sb-s", "while :; do echo tick; sleep 0.1; done", timeout=60)
    first = next(it)
    assert first.kind == "stdout" and first.text.startswith("tick")
    it.close()
    # qvmd serves on, and the next command runs
    assert agent_a.sandbox.run_sandbox_command("sb-s", "echo after").stdout == "after\n"


def test_files_round_trip(root, agent_a):
    blob = os.urandom(300000) + b"\0\xff\n"
    r = agent_a.sandbox.upload_file("sb-s", "/root/blob", blob, mode=0o600)
    assert (r["bytes"], r["mode"]) == (len(blob), "0600")
    back = root.vms.download_file("sb-s", "/root/blob")
    assert hashlib.sha256(back).hexdigest() == hashlib.sha256(blob).hexdigest()
    assert agent_a.sandbox.download_file("sb-s", "/root/blob") == blob
    res = root.vms.exec("sb-s", "stat -c %a /root/blob")
    assert res.stdout.strip() == "600"
    root.vms.upload_file("sb-s", "/root/empty", b"")
    assert root.vms.download_file("sb-s", "/root/empty") == b""
    with pytest.raises(qvm.NotFound):
        root.vms.download_file("sb-s", "/root/no-such-file")
    for bad in ("relative", "/root/", "/a\nb", ""):
        with pytest.raises(ValueError):
            root.vms.download_file("sb-s", bad)
    with pytest.raises(ValueError):
        root.vms.upload_file("sb-s", "/root/x", b"x", mode=0o4755)


def test_ip_and_console(root):
    addr = root.vm_ip("sb-s")
    assert isinstance(addr, qvm.VmAddress) and addr.source
    assert addr.ip or addr.ssh_port
    c = root.console("sb-s", tail=1 << 20)
    assert b"qvm-mini: ready" in c.data
    tail = root.vms.console("sb-s", tail=8)
    assert (len(tail.data), tail.truncated) == (8, True)
    with pytest.raises(ValueError):
        root.console("sb-s", tail=0)


def test_another_agent_gets_404(agent_b):
    with pytest.raises(qvm.NotFound):
        agent_b.sandbox.download_file("sb-s", "/root/blob")
    with pytest.raises(qvm.NotFound):
        agent_b.sandbox.upload_file("sb-s", "/root/x", b"x")
    with pytest.raises(qvm.NotFound):
        list(agent_b.sandbox.run_sandbox_command_stream("sb-s", "true"))


def test_stopped(root, agent_a):
    root.vms.stop("sb-s", timeout=60)
    with pytest.raises(qvm.Conflict):
        root.vm_ip("sb-s")
    agent_a.sandbox.destroy_sandbox("sb-s")
    root.vms.delete("gold-s")
