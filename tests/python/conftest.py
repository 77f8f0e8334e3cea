"""Shared by the tests against a real qvmd (test_qvmd.py, test_snapshots.py),
which tests/python/run.sh starts and describes in QVM_TEST_* variables."""

import os
import time

import pytest

import qvm

ENV = os.environ


def tcp(token_var):
    return qvm.QvmClient(base_url=ENV["QVM_TEST_URL"], token=ENV[token_var], timeout=30)


@pytest.fixture(scope="module")
def root():
    return qvm.QvmClient(ENV["QVM_TEST_SOCK"], timeout=30)


@pytest.fixture(scope="module")
def agent_a():
    return tcp("QVM_TEST_TOKEN_A")


@pytest.fixture(scope="module")
def agent_b():
    return tcp("QVM_TEST_TOKEN_B")


def wait_ready(name, limit_s=240):
    """The mini guest prints this on its serial console once sshd is up."""
    log = os.path.join(ENV["QVM_STATE_DIR"], "vms", name, "serial.log")
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            with open(log, "rb") as f:
                if b"qvm-mini: ready" in f.read():
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.2)
    pytest.fail(f"'{name}' never printed 'qvm-mini: ready'")


def create_mini(client, name, **kw):
    """A VM of the mini guest with a disk of its own (an overlay on the
    empty base), as tests/qvmd/mini.sh makes one."""
    mini = ENV["QVM_TEST_MINI"]
    return client.vms.create(
        name, image=ENV["QVM_TEST_BASE"], disk_size="32M", memory="256M", user="root",
        kernel=f"{mini}/vmlinuz", initrd=f"{mini}/initrd.img", append="console=ttyS0",
        timeout=120, **kw)
