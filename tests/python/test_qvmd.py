"""The SDK against a real qvmd (started by tests/python/run.sh, as
tests/qvmd/mini.sh starts one) and the mini guest: a golden VM, a sandbox of
agent-a made from it, commands in it, errors as exceptions, a read token's
403, agent-b's 404s for agent-a's sandbox, the audit log, destroy.
The tests run in order and share qvmd's state."""

import datetime
import os
import time

import pytest
from conftest import ENV, create_mini, tcp, wait_ready

import qvm

pytestmark = pytest.mark.skipif("QVM_TEST_SOCK" not in ENV,
                                reason="run through tests/python/run.sh qvmd")


def test_nothing_at_first(root):
    assert root.vms.list() == []
    assert root.sandbox.list_sandboxes() == []


def test_create_a_golden_vm(root):
    vm = create_mini(root, "golden", labels={"golden": "true"})
    assert isinstance(vm, qvm.Vm)
    assert (vm.name, vm.state, vm.labels, vm.memory_mib) == ("golden", "created",
                                                            {"golden": "true"}, 256)
    assert root.vms.get("golden").state == "created"
    assert [v.name for v in root.vms.list()] == ["golden"]


def test_errors_carry_the_problem(root):
    with pytest.raises(qvm.NotFound) as ei:
        root.vms.get("no-such-vm")
    assert (ei.value.status, ei.value.code) == (404, "ENOTFOUND")
    assert "no-such-vm" in ei.value.detail
    with pytest.raises(qvm.Conflict) as ei:
        root.vms.create("golden", image=ENV["QVM_TEST_BASE"])
    assert (ei.value.status, ei.value.code) == (409, "EEXISTS")
    with pytest.raises(qvm.ValidationError) as ei:
        root.vms.create("Not_A_Name", image=ENV["QVM_TEST_BASE"])
    assert (ei.value.status, ei.value.field) == (422, "name")
    with pytest.raises(qvm.NotFound):
        root.sandbox.run_sandbox_command("no-such-sandbox", "true")


def test_a_read_token_reads_but_may_not_write():
    reader = tcp("QVM_TEST_TOKEN_READ")
    assert [v.name for v in reader.vms.list()] == ["golden"]
    with pytest.raises(qvm.Forbidden) as ei:
        reader.vms.delete("golden")
    assert (ei.value.status, ei.value.code) == (403, "Forbidden")
    with pytest.raises(qvm.Forbidden):
        reader.sandbox.create_sandbox(source="golden", ttl="10m")
    assert [v.name for v in reader.vms.list()] == ["golden"]


def test_a_full_token_over_tcp():
    full = tcp("QVM_TEST_TOKEN_FULL")
    assert full.vms.get("golden").labels == {"golden": "true"}
    assert full.openapi()["paths"]["/api/v1/vms"]


def test_a_bad_token_is_401():
    bad = qvm.QvmClient(base_url=ENV["QVM_TEST_URL"], token="not-a-known-token-0000")
    with pytest.raises(qvm.Unauthorized) as ei:
        bad.vms.list()
    assert ei.value.status == 401


def test_an_agent_creates_a_sandbox(agent_a):
    sb = agent_a.sandbox.create_sandbox(source="golden", name="sb-a", ttl="10m",
                                        labels={"job": "t1"}, wait_cloud_init=False, timeout=300)
    assert isinstance(sb, qvm.Sandbox)
    assert (sb.name, sb.agent, sb.state, sb.labels.get("job")) == ("sb-a", "agent-a", "running",
                                                                   "t1")
    assert sb.expires_at_us and sb.expires_at_us > time.time() * 1e6
    assert agent_a.sandbox.get_sandbox("sb-a").agent == "agent-a"
    assert [s.name for s in agent_a.sandbox.list_sandboxes()] == ["sb-a"]
    wait_ready("sb-a")


def test_run_commands(agent_a):
    r = agent_a.sandbox.run_sandbox_command("sb-a", "echo out-$((6*7)); echo err >&2; exit 3")
    assert isinstance(r, qvm.ExecResult)
    assert (r.exit_code, r.signal, r.stdout, r.stderr, r.ok) == (3, None, "out-42\n", "err\n",
                                                                 False)
    assert r.stdout_bytes is None and not r.stdout_truncated
    r = agent_a.sandbox.run_sandbox_command("sb-a", ["printf", "a\\377b"], timeout=60)
    assert r.ok and r.stdout_raw() == b"a\xffb" and r.stdout == "a\\xffb"
    r = agent_a.sandbox.run_sandbox_command("sb-a", ["sh", "-c", "kill -KILL $$"])
    assert (r.exit_code, r.signal) == (None, "KILL")
    with pytest.raises(qvm.GatewayTimeout) as ei:
        agent_a.sandbox.run_sandbox_command("sb-a", ["sleep", "30"], timeout=1.5)
    assert ei.value.status == 504


def test_another_agent_sees_nothing_of_it(agent_b):
    assert agent_b.sandbox.list_sandboxes() == []
    for call in (lambda: agent_b.sandbox.get_sandbox("sb-a"),
                 lambda: agent_b.sandbox.run_sandbox_command("sb-a", "true"),
                 lambda: agent_b.sandbox.destroy_sandbox("sb-a"),
                 lambda: agent_b.vms.get("sb-a")):
        with pytest.raises(qvm.NotFound) as ei:
            call()
        assert ei.value.status == 404 and ei.value.code in ("NotFound", "ENOTFOUND")
    # Exactly as a name that does not exist.
    with pytest.raises(qvm.NotFound) as missing:
        agent_b.sandbox.get_sandbox("sb-zz")
    with pytest.raises(qvm.NotFound) as other:
        agent_b.sandbox.get_sandbox("sb-a")
    assert (missing.value.title, missing.value.code) == (other.value.title, other.value.code)
    with pytest.raises(qvm.ValidationError) as ei:
        agent_b.sandbox.create_sandbox(source="golden", agent_id="agent-a", ttl="10m")
    assert ei.value.field == "agent"


def test_the_audit_log_names_the_agent(root):
    recs = root.audit.list(vm="sb-a")
    assert recs and all(isinstance(r, qvm.AuditRecord) and r.vm == "sb-a" for r in recs)
    execs = [r for r in recs if r.action == "exec"]
    assert len(execs) >= 3 and {r.agent for r in execs} == {"agent-a"}
    assert [r.seq for r in recs] == sorted(r.seq for r in recs)
    assert root.audit.list(vm="sb-a", since=0) == recs
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    assert root.audit.list(vm="sb-a", since=later) == []
    assert root.audit.list(vm="no-such-vm") == []


def test_destroy(agent_a):
    agent_a.sandbox.destroy_sandbox("sb-a")
    with pytest.raises(qvm.NotFound):
        agent_a.sandbox.get_sandbox("sb-a")
    assert agent_a.sandbox.list_sandboxes() == []


def readme_agent_loop():
    """python/README.md's agent loop, as its reader would copy it."""
    with open(os.path.join(ENV["QVM_SOURCE_DIR"], "python", "README.md")) as f:
        text = f.read()
    block = text.split("## An agent loop\n", 1)[1].lstrip("\n")
    lines = []
    for line in block.splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines)


def test_the_readmes_agent_loop(agent_a):
    code = readme_agent_loop()
    assert "create_sandbox" in code and "destroy_sandbox" in code
    said = []

    def plan():
        sbs = agent_a.sandbox.list_sandboxes()
        assert [s.labels.get("task") for s in sbs] == ["fix-1234"]
        wait_ready(sbs[0].name)
        yield "echo hello from $(hostname)"
        yield ["sh", "-c", "echo oops >&2; exit 4"]

    code = code.replace("http://127.0.0.1:8080", ENV["QVM_TEST_URL"])
    exec(compile(code, "python/README.md", "exec"),
         {"AGENT_TOKEN": ENV["QVM_TEST_TOKEN_A"], "plan": plan, "feedback": said.append})
    assert len(said) == 2, said
    assert said[0].startswith("exit 0 signal None\nhello from "), said
    assert said[1] == "exit 4 signal None\noops\n", said
    assert agent_a.sandbox.list_sandboxes() == []


def test_delete_the_golden_vm(root):
    root.vms.delete("golden")
    assert root.vms.list() == []
