"""Change sets through the SDK (client.reviews), against a real qvmd, on a
VM whose disk is changed offline to a second file system state (mkfs.ext4
-d, as tests/qvmd/reviews.sh): create, list, get, diff, playbook, an edit
refused by ansible's syntax check and a good one, approve, reject, apply
refused when not approved, bad ids; agent tokens get 404 for the operator's
change set and for the operator's routes. No guest boots."""

import base64
import os
import subprocess

import pytest
from conftest import ENV

import qvm

pytestmark = pytest.mark.skipif("QVM_TEST_SOCK" not in ENV,
                                reason="run through tests/python/run.sh qvmd")

HOSTILE = "<b>\x1b[31mred"


def sh(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def review_vm(root, tmp_path_factory):
    d = tmp_path_factory.mktemp("review")
    a, b = d / "A", d / "B"
    (a / "etc").mkdir(parents=True)
    (b / "etc").mkdir(parents=True)
    (a / "etc" / "conf").write_text("one\n")
    (b / "etc" / "conf").write_text("two\n")
    (b / "etc" / HOSTILE).write_text("x\n")
    sh("mkfs.ext4", "-q", "-d", str(a), str(d / "a.raw"), "16M")
    sh("mkfs.ext4", "-q", "-d", str(b), str(d / "b.raw"), "16M")
    sh("qemu-img", "convert", "-O", "qcow2", str(d / "a.raw"), str(d / "golden.qcow2"))
    root.vms.create("rv1", image=str(d / "golden.qcow2"), memory="256M", no_cloud_init=True)
    disk = os.path.join(ENV["QVM_STATE_DIR"], "vms", "rv1", "disk.qcow2")
    sh("qemu-img", "snapshot", "-c", "base", disk)
    sh("qemu-img", "convert", "-n", "-f", "raw", "-O", "qcow2", str(d / "b.raw"), disk)
    return "rv1"


@pytest.fixture(scope="module")
def created(root, review_vm):
    return root.reviews.create(review_vm, from_snapshot="base")


def test_create_list_get(root, created):
    r = created
    assert isinstance(r, qvm.Review)
    assert (r.vm, r.status, r.changes) == ("rv1", "pending", 2), r
    assert len(r.diff_sha256 or "") == 64 and len(r.playbook_sha256 or "") == 64
    assert [x.id for x in root.reviews.list(vm="rv1")] == [r.id]
    assert root.reviews.list(vm="nosuch") == []
    assert root.reviews.get(r.id) == r
    with pytest.raises(qvm.NotFound):
        root.reviews.get("0123456789ab")
    with pytest.raises(ValueError):
        root.reviews.get("../../etc")
    with pytest.raises(qvm.NotFound):
        root.reviews.create("nosuch")
    with pytest.raises(qvm.NotFound):
        root.reviews.create("rv1", from_snapshot="nosuch")
    with pytest.raises(qvm.ValidationError) as ei:
        root.reviews.create("rv1", verify=True)
    assert ei.value.field == "verify"


def test_diff_and_playbook(root, created):
    d = root.reviews.diff(created.id)
    paths = {c["path"]: c for c in d["changes"]}
    assert len(paths) == 2 and "/etc/conf" in paths, d
    # the escape byte from the guest comes neutralized, the bytes in pathB64
    (shown,) = [p for p in paths if p != "/etc/conf"]
    assert shown.startswith("/etc/<b>") and "\x1b" not in shown and "\\x1b" in shown.lower(), shown
    assert base64.b64decode(paths[shown]["pathB64"]) == ("/etc/" + HOSTILE).encode(), paths[shown]
    files = root.reviews.playbook(created.id)
    by_path = {f.path: f for f in files}
    assert "playbook.yml" in by_path, by_path
    pb = by_path["playbook.yml"]
    assert isinstance(pb, qvm.PlaybookFile) and not pb.truncated and "/etc/conf" in pb.text


def test_agents_see_nothing_of_it(agent_a, agent_b, created):
    for c in (agent_a, agent_b):
        assert c.reviews.list() == []
        with pytest.raises(qvm.NotFound):
            c.reviews.get(created.id)
        with pytest.raises(qvm.NotFound):
            c.reviews.diff(created.id)
        with pytest.raises(qvm.NotFound):
            c.reviews.approve(created.id)
        with pytest.raises(qvm.NotFound):
            c.reviews.apply(created.id)
        with pytest.raises(qvm.NotFound):
            c.reviews.create("rv1", from_snapshot="base")


def test_gate(root, created):
    rid = created.id
    with pytest.raises(qvm.Conflict):
        root.reviews.apply(rid)
    r = root.reviews.approve(rid, comment="fine")
    assert r.status == "approved" and r.approval and r.approval["comment"] == "fine"
    with pytest.raises(qvm.ValidationError) as ei:
        root.reviews.edit_playbook(rid, "- hosts: all\n  tasks:\n    - name: [unclosed\n")
    assert ei.value.field == "text"
    assert root.reviews.get(rid).status == "approved"
    text = next(f.text for f in root.reviews.playbook(rid) if f.path == "playbook.yml")
    r = root.reviews.edit_playbook(
        rid, text + "- name: more\n  hosts: all\n  gather_facts: false\n  tasks:\n"
                    "  - ansible.builtin.ping:\n")
    assert (r.status, r.approval) == ("pending", None)
    with pytest.raises(ValueError):
        root.reviews.approve(rid, comment="x" * 5000)
    r = root.reviews.reject(rid, comment="no")
    assert r.status == "rejected"
    with pytest.raises(qvm.Conflict):
        root.reviews.approve(rid)
    assert [h["action"] for h in root.reviews.get(rid).history] == [
        "create", "approve", "edit", "reject"]
