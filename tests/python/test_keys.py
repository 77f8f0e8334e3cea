"""The SDK's SSH key calls against a real qvmd (tests/python/run.sh): a key
generated, listed, read back (public parts only), a taken name and a bad
type as exceptions naming the field, a key for a VM that does not exist,
and a key added to a VM that never ran (into its seed: no boot needed)."""

import os
import subprocess

import pytest
from conftest import ENV, create_mini

import qvm

pytestmark = pytest.mark.skipif("QVM_TEST_SOCK" not in ENV,
                                reason="run through tests/python/run.sh qvmd")


def test_generate_list_get(root):
    k = root.ssh_keys.generate("sdk-key", comment="from the sdk")
    assert isinstance(k, qvm.SshKey)
    assert (k.name, k.key_type) == ("sdk-key", "ed25519")
    assert k.public_key.startswith("ssh-ed25519 ") and k.public_key.endswith(" from the sdk")
    assert k.fingerprint and k.fingerprint.startswith("SHA256:")
    assert "PRIVATE" not in repr(k.raw)
    assert [x.name for x in root.ssh_keys.list()] == ["sdk-key"]
    assert root.ssh_keys.get("sdk-key").public_key == k.public_key


def test_errors(root):
    with pytest.raises(qvm.Conflict):
        root.ssh_keys.generate("sdk-key")
    with pytest.raises(qvm.ValidationError) as ei:
        root.ssh_keys.generate("other", key_type="dsa")
    assert ei.value.field == "type"
    with pytest.raises(qvm.NotFound):
        root.ssh_keys.get("no-such-key")
    with pytest.raises(qvm.NotFound):
        root.ssh_keys.add_to_vm("no-such-vm", "sdk-key")
    assert [x.name for x in root.ssh_keys.list()] == ["sdk-key"]


def test_add_to_stopped_vm(root):
    create_mini(root, "sdk-keys-vm")
    try:
        root.ssh_keys.add_to_vm("sdk-keys-vm", "sdk-key")
        root.ssh_keys.add_to_vm("sdk-keys-vm", "sdk-key")
        seed = os.path.join(ENV["QVM_STATE_DIR"], "vms", "sdk-keys-vm", "seed.iso")
        keys = subprocess.run(["isoinfo", "-J", "-x", "/qvm-authorized-keys", "-i", seed],
                              check=True, capture_output=True, text=True).stdout
        assert keys == root.ssh_keys.get("sdk-key").public_key + "\n"
    finally:
        root.vms.delete("sdk-keys-vm", force=True)
