"""Snapshots, clones, forks, and a sandbox's checkpoints and rollback through
the SDK, against a real qvmd and the mini guest (as tests/qvmd/snapshots.sh
does with curl). The mini guest's root file system lives in RAM, so a
restore with RAM is what brings a file back. The tests run in order."""

import pytest
from conftest import ENV, create_mini, wait_ready

import qvm

pytestmark = pytest.mark.skipif("QVM_TEST_SOCK" not in ENV,
                                reason="run through tests/python/run.sh qvmd")


def put(run, name, text):
    r = run(name, f"echo {text} > /root/mark")
    assert r.ok, r


def mark(run, name):
    r = run(name, "cat /root/mark 2>/dev/null; true")
    assert r.ok, r
    return r.stdout.strip()


def test_a_running_vm(root):
    vm = create_mini(root, "src", labels={"golden": "true"})
    assert vm.state == "created"
    assert root.vms.start("src", timeout=120).state == "running"
    wait_ready("src")


def test_snapshot_list_and_restore(root):
    run = root.vms.exec
    put(run, "src", "before")
    s1 = root.vms.create_snapshot("src", "s1")
    assert isinstance(s1, qvm.Snapshot) and (s1.name, s1.ram) == ("s1", True)
    assert [s.name for s in root.vms.list_snapshots("src")] == ["s1"]
    with pytest.raises(qvm.ValidationError) as ei:
        root.vms.create_snapshot("src", "Bad_Name")
    assert ei.value.field == "name"
    put(run, "src", "after")
    r = root.vms.restore_snapshot("src", "s1")
    assert r == qvm.Restored(name="src", restored="s1")
    assert mark(run, "src") == "before"
    with pytest.raises(qvm.NotFound):
        root.vms.restore_snapshot("src", "nosuch")


def test_clone_and_fork(root):
    c = root.vms.clone("src", "c1", snapshot="s1")
    assert isinstance(c, qvm.CloneResult)
    assert (c.name, c.source, c.snapshot) == ("c1", "src", "s1")
    assert root.vms.get("c1").name == "c1"
    with pytest.raises(qvm.Conflict):
        root.vms.clone("src", "c1")
    root.vms.delete("c1")
    with pytest.raises(qvm.ValidationError) as ei:
        root.vms.fork("src", count=0)
    assert ei.value.field == "count"
    f = root.vms.fork("src", count=1, prefix="fk")
    assert isinstance(f, qvm.ForkResult) and f.source == "src"
    assert [x.name for x in f.forks] == ["fk-1"]
    assert mark(root.vms.exec, "fk-1") == "before"
    root.vms.delete("fk-1", force=True)
    root.vms.delete_snapshot("src", "s1")
    assert root.vms.list_snapshots("src") == []


def test_a_sandbox_checkpoints_and_rolls_back(agent_a, agent_b):
    sbx = agent_a.sandbox
    sb = sbx.create_sandbox(source="src", name="sb-c", ttl="10m", wait_cloud_init=False,
                            checkpoint_each=True, timeout=300)
    assert sb.agent == "agent-a"
    wait_ready("sb-c")
    # checkpoint_each: every command is preceded by a checkpoint it names.
    r = sbx.run_sandbox_command("sb-c", "echo one > /root/mark")
    assert r.ok and r.checkpoint and r.checkpoint.startswith("ckpt-"), r
    first = r.checkpoint
    ck = sbx.create_snapshot("sb-c")
    assert isinstance(ck, qvm.Snapshot) and ck.name.startswith("ckpt-") and ck.name != first
    names = [s.name for s in sbx.list_snapshots("sb-c")]
    assert first in names and ck.name in names
    r = sbx.run_sandbox_command("sb-c", "echo two > /root/mark")
    assert r.ok and r.checkpoint not in (None, first, ck.name)
    for call in (lambda: agent_b.sandbox.checkpoint("sb-c"),
                 lambda: agent_b.sandbox.rollback("sb-c"),
                 lambda: agent_b.sandbox.list_snapshots("sb-c")):
        with pytest.raises(qvm.NotFound):
            call()
    with pytest.raises(qvm.NotFound):
        sbx.rollback("sb-c", to="nosuch")
    back = sbx.rollback("sb-c", to=ck.name)
    assert back == qvm.Restored(name="sb-c", restored=ck.name)
    r = sbx.run_sandbox_command("sb-c", ["cat", "/root/mark"])
    assert r.stdout == "one\n", r
    sbx.destroy_sandbox("sb-c")
    assert sbx.list_sandboxes() == []


def test_cleanup(root):
    root.vms.delete("src", force=True)
    assert root.vms.list() == []
