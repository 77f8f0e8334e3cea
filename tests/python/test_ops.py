"""The SDK's images and operations against a real qvmd (tests/python/run.sh):
a pull of a local file is an operation that wait() follows to its end, the
image is listed, read and removed; an http URL without a checksum is a
ValidationError before any operation; an agent token sees no other's
operation and may not pull; an ended operation cannot be cancelled."""

import pytest
from conftest import ENV, tcp

import qvm

pytestmark = pytest.mark.skipif("QVM_TEST_SOCK" not in ENV,
                                reason="run through tests/python/run.sh qvmd")


def test_pull_wait_list_delete(root):
    op = root.images.pull(ENV["QVM_TEST_BASE"], name="sdk-base")
    assert isinstance(op, qvm.Operation)
    assert (op.kind, op.target) == ("image.pull", "sdk-base")
    done = root.operations.wait(op, timeout=120)
    assert done.ok, done.error
    assert done.id == op.id and not done.running and done.error is None
    assert done.result["names"] == ["sdk-base"]
    assert op.id in [o.id for o in root.operations.list()]
    assert root.operations.list(limit=1)[0].id == op.id  # newest first
    imgs = root.images.list()
    assert "sdk-base" in [n for i in imgs for n in i.names]
    img = root.images.get("sdk-base")
    assert isinstance(img, qvm.Image) and img.format == "qcow2" and img.digest
    assert isinstance(root.images.catalog(), list)
    with pytest.raises(qvm.Conflict):
        root.operations.cancel(op)
    root.images.delete("sdk-base")
    with pytest.raises(qvm.NotFound):
        root.images.get("sdk-base")


def test_errors_and_scopes(root, agent_a):
    before = len(root.operations.list())
    with pytest.raises(qvm.ValidationError) as ei:
        root.images.pull("http://127.0.0.1:1/disk.qcow2")
    assert ei.value.field == "source" and ei.value.error_class == "ImageUnverified"
    assert len(root.operations.list()) == before
    mine = root.operations.list()[0]
    with pytest.raises(qvm.NotFound):
        agent_a.operations.get(mine.id)
    with pytest.raises(qvm.NotFound):
        agent_a.operations.cancel(mine.id)
    assert agent_a.operations.list() == []
    with pytest.raises(qvm.NotFound):
        agent_a.images.pull(ENV["QVM_TEST_BASE"])
    assert isinstance(agent_a.images.list(), list)
    with pytest.raises(qvm.Forbidden):
        tcp("QVM_TEST_TOKEN_READ").images.pull(ENV["QVM_TEST_BASE"])
    with pytest.raises(qvm.NotFound):
        root.operations.get("op-" + "0" * 32, wait=0.5)
    with pytest.raises(ValueError):
        root.operations.get("../vms")
    with pytest.raises(ValueError):
        root.operations.get(mine.id, wait=61)
