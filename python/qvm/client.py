"""QvmClient: qvmd's routes (docs/qvmd.md, api/openapi.json) as methods.

    client = QvmClient()                                   # the UNIX socket
    client = QvmClient(base_url="http://127.0.0.1:8080", token=SECRET)
    sb = client.sandbox.create_sandbox(source="golden", agent_id="ci-7", ttl="30m")
    r = client.sandbox.run_sandbox_command(sb.name, "make test", timeout=600)
    client.sandbox.destroy_sandbox(sb.name)

Every call has a deadline: `timeout` (default 30 s) for quick ones, and for
the ones that wait on a VM (create, start, stop, exec, sandbox create and
destroy) `op_timeout` (default 15 min) or, when the call is given a
timeout for the work itself, that plus a margin.
"""

from __future__ import annotations

import datetime
import json
import re
import ssl
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union
from urllib.parse import quote, urlencode

from .errors import QvmTimeout, ResponseError, api_error
from .models import (AuditRecord, CloneResult, Console, ExecFrame, ExecResult, ForkResult, Image,
                     Operation, PlaybookFile, Restored, Review, Sandbox, Snapshot, SshKey, Vm,
                     VmAddress, list_of)
from .transport import DEFAULT_MAX_BODY, Transport

# qvmd's own bounds, checked here so that a mistake is a ValueError at the
# call, not a round trip.
_TIMEOUT_MS_MAX = 3_600_000
_ARGV_MAX = 256
_TOKEN_RE = re.compile(r"[A-Za-z0-9._~+/=-]{16,256}")
# The margin over a server-side wait before the client gives up.
_MARGIN_S = 30.0

Command = Union[str, Sequence[str]]
_REVIEW_ID_RE = re.compile(r"[0-9a-f]{12}")
_COMMENT_MAX = 4096
_PLAYBOOK_MAX = 512 << 10


def _name(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError("a VM or sandbox name must be a non-empty string")
    return quote(name, safe="")


def _timeout_ms(seconds: Optional[float], minimum_ms: int = 1) -> Optional[int]:
    if seconds is None:
        return None
    ms = int(round(seconds * 1000))
    if not minimum_ms <= ms <= _TIMEOUT_MS_MAX:
        raise ValueError(
            f"timeout must be {minimum_ms / 1000:g}..{_TIMEOUT_MS_MAX // 1000} seconds, "
            f"not {seconds!r}")
    return ms


def _argv(command: Command) -> List[str]:
    """A string runs through `sh -c`; a sequence is the argv itself."""
    if isinstance(command, str):
        argv = ["sh", "-c", command]
    else:
        argv = list(command)
    if not argv or len(argv) > _ARGV_MAX:
        raise ValueError(f"a command has 1..{_ARGV_MAX} arguments")
    for a in argv:
        if not isinstance(a, str):
            raise ValueError("every argument of a command must be a string")
    return argv


# qvmd's file routes: an upload's cap, a guest path's length.
_UPLOAD_MAX = 64 << 20
_GUEST_PATH_MAX = 4096


def _guest_path(path: str) -> str:
    if (not isinstance(path, str) or not path.startswith("/") or path.endswith("/")
            or len(path.encode()) > _GUEST_PATH_MAX
            or any(ord(c) < 0x20 or ord(c) == 0x7f for c in path)):
        raise ValueError("a guest path is absolute, at most 4096 bytes, without control "
                         "characters, and not a directory ('/' at its end)")
    return path


def _exec_frames(api: "_Api", path: str, command: "Command",
                 timeout: Optional[float]) -> Iterator[ExecFrame]:
    body: Dict[str, Any] = {"argv": _argv(command), "stream": True}
    ms = _timeout_ms(timeout)
    if ms is not None:
        body["timeoutMs"] = ms
    for line in api._t.stream_lines("POST", "/api/v1" + path, body, api._op_timeout(timeout)):
        try:
            doc = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise ResponseError(f"POST {path}: a frame is not valid JSON") from e
        if isinstance(doc, dict) and "error" in doc:
            err = doc["error"] if isinstance(doc["error"], dict) else None
            status = err.get("status") if err else None
            raise api_error(status if isinstance(status, int) and 400 <= status < 600 else 502,
                            err, json.dumps(doc["error"])[:4096], None)
        frame = ExecFrame.from_json(doc)
        yield frame
        if frame.kind == "exit":
            return
    raise ResponseError(f"POST {path}: the stream ended without an exit frame")


def _upload(api: "_Api", path: str, guest_path: str, data: bytes, mode: Optional[int],
            timeout: Optional[float]) -> Dict[str, Any]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError("data must be bytes")
    if len(data) > _UPLOAD_MAX:
        raise ValueError(f"qvmd takes files of at most {_UPLOAD_MAX} bytes")
    q: Dict[str, str] = {"path": _guest_path(guest_path)}
    if mode is not None:
        if not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= 0o777:
            raise ValueError("mode is permission bits, 0 to 0o777")
        q["mode"] = "%04o" % mode
    _, raw, ctype = api._t.request_bytes("PUT", "/api/v1" + path + "?" + urlencode(q),
                                         bytes(data), api._call_timeout(timeout))
    try:
        doc = json.loads(raw.decode("utf-8")) if ctype == "application/json" else None
    except (UnicodeDecodeError, ValueError) as e:
        raise ResponseError(f"PUT {path}: the answer is not valid JSON") from e
    if not isinstance(doc, dict):
        raise ResponseError(f"PUT {path}: expected a JSON object")
    return doc


def _download(api: "_Api", path: str, guest_path: str, timeout: Optional[float]) -> bytes:
    q = urlencode({"path": _guest_path(guest_path)})
    _, raw, _ = api._t.request_bytes("GET", "/api/v1" + path + "?" + q, None,
                                     api._call_timeout(timeout))
    return raw


def _drop_none(d: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


class _Api:
    def __init__(self, client: "QvmClient") -> None:
        self._client = client
        self._t = client.transport

    def _call(self, method: str, path: str, body: Optional[Dict[str, Any]] = None,
              timeout: Optional[float] = None) -> Any:
        _, doc = self._t.request(method, "/api/v1" + path, body,
                                 timeout if timeout is not None else self._client.timeout)
        return doc

    def _op_timeout(self, work_s: Optional[float]) -> float:
        """The deadline of a call that waits on qvmd's work of work_s seconds."""
        if work_s is None:
            return self._client.op_timeout
        return work_s + _MARGIN_S

    def _call_timeout(self, timeout: Optional[float]) -> float:
        """The deadline of a call given as a whole (or op_timeout)."""
        return timeout if timeout is not None else self._client.op_timeout


class VmsApi:
    """client.vms: /api/v1/vms."""

    def __init__(self, client: "QvmClient") -> None:
        self._api = _Api(client)

    def list(self) -> List[Vm]:
        return list_of(Vm, self._api._call("GET", "/vms"), "vms")

    def get(self, name: str) -> Vm:
        return Vm.from_json(self._api._call("GET", f"/vms/{_name(name)}"))

    def create(
        self,
        name: str,
        *,
        image: Optional[str] = None,
        image_url: Optional[str] = None,
        memory: Union[int, str, None] = None,
        vcpus: Optional[int] = None,
        disk_size: Union[int, str, None] = None,
        cloud_config: Optional[str] = None,
        kernel: Optional[str] = None,
        initrd: Optional[str] = None,
        append: Optional[str] = None,
        user: Optional[str] = None,
        network: Optional[str] = None,
        agent: Optional[str] = None,
        labels: Optional[Dict[str, str]] = None,
        no_cloud_init: Optional[bool] = None,
        timeout: Optional[float] = None,
    ) -> Vm:
        """Creates a VM (not started). memory: MiB or "512M"; disk_size: GiB
        or "10G". timeout: of the call (a first pull of an image is in it)."""
        body = _drop_none({
            "name": name, "image": image, "imageUrl": image_url, "memory": memory,
            "vcpus": vcpus, "diskSize": disk_size, "cloudConfig": cloud_config,
            "kernel": kernel, "initrd": initrd, "append": append, "user": user,
            "network": network, "agent": agent, "labels": labels,
            "noCloudInit": no_cloud_init,
        })
        return Vm.from_json(self._api._call("POST", "/vms", body,
                                            self._api._call_timeout(timeout)))

    def delete(self, name: str, force: bool = False, timeout: Optional[float] = None) -> None:
        """Removes a VM; a running one only with force=True (else Conflict)."""
        q = "?force=true" if force else ""
        self._api._call("DELETE", f"/vms/{_name(name)}{q}", None,
                        self._api._call_timeout(timeout))

    def _power(self, verb: str, name: str, timeout: Optional[float]) -> Vm:
        ms = _timeout_ms(timeout)
        body = {"timeoutMs": ms} if ms is not None else {}
        return Vm.from_json(self._api._call("POST", f"/vms/{_name(name)}/{verb}", body,
                                            self._api._op_timeout(timeout)))

    def start(self, name: str, timeout: Optional[float] = None) -> Vm:
        """Starts a VM; timeout: how long qvmd waits for it (seconds)."""
        return self._power("start", name, timeout)

    def stop(self, name: str, timeout: Optional[float] = None) -> Vm:
        """Stops a VM (graceful, then forced after timeout seconds)."""
        return self._power("stop", name, timeout)

    def restart(self, name: str, timeout: Optional[float] = None) -> Vm:
        return self._power("restart", name, timeout)

    def exec(self, name: str, command: Command, timeout: Optional[float] = None) -> ExecResult:
        """Runs a command in a running VM over its SSH. command: an argv
        list, or a string run by `sh -c`. timeout: the command's, in seconds
        (over it: GatewayTimeout)."""
        body: Dict[str, Any] = {"argv": _argv(command)}
        ms = _timeout_ms(timeout)
        if ms is not None:
            body["timeoutMs"] = ms
        return ExecResult.from_json(self._api._call("POST", f"/vms/{_name(name)}/exec", body,
                                                    self._api._op_timeout(timeout)))

    def exec_stream(self, name: str, command: Command,
                    timeout: Optional[float] = None) -> Iterator[ExecFrame]:
        """exec as a stream: yields ExecFrame objects as the command runs,
        the last one of kind "exit". An error after the stream began is
        raised as ApiError. Leaving the loop early closes the connection."""
        return _exec_frames(self._api, f"/vms/{_name(name)}/exec", command, timeout)

    def upload_file(self, name: str, path: str, data: bytes, mode: Optional[int] = None,
                    timeout: Optional[float] = None) -> Dict[str, Any]:
        """Writes data (at most 64 MiB) to the absolute path in the guest,
        with mode (default 0o644). Returns {"path", "bytes", "mode"}."""
        return _upload(self._api, f"/vms/{_name(name)}/files", path, data, mode, timeout)

    def download_file(self, name: str, path: str, timeout: Optional[float] = None) -> bytes:
        """The bytes of the file at the absolute path in the guest (at most
        64 MiB, and at most max_body)."""
        return _download(self._api, f"/vms/{_name(name)}/files", path, timeout)

    def ip(self, name: str) -> VmAddress:
        """The running VM's address (Conflict when it is not running)."""
        return VmAddress.from_json(self._api._call("GET", f"/vms/{_name(name)}/ip"))

    def console(self, name: str, tail: Optional[int] = None) -> Console:
        """The last `tail` bytes (default 64 KiB, at most 1 MiB) of the
        serial console log."""
        path = f"/vms/{_name(name)}/console"
        if tail is not None:
            if not isinstance(tail, int) or isinstance(tail, bool) or not 1 <= tail <= 1 << 20:
                raise ValueError("tail is 1 to 1048576 bytes")
            path += "?" + urlencode({"tail": tail})
        return Console.from_json(self._api._call("GET", path))


    def list_snapshots(self, name: str) -> List[Snapshot]:
        """A VM's snapshots, oldest first."""
        return list_of(Snapshot, self._api._call("GET", f"/vms/{_name(name)}/snapshots"),
                       "snapshots")

    def create_snapshot(self, name: str, snapshot: str, disk_only: Optional[bool] = None,
                        timeout: Optional[float] = None) -> Snapshot:
        """Takes a snapshot named snapshot; of a running VM it holds the RAM
        too unless disk_only. timeout: of the call."""
        body = _drop_none({"name": snapshot, "diskOnly": disk_only})
        return Snapshot.from_json(self._api._call("POST", f"/vms/{_name(name)}/snapshots", body,
                                                  self._api._call_timeout(timeout)))

    def delete_snapshot(self, name: str, snapshot: str, timeout: Optional[float] = None) -> None:
        self._api._call("DELETE", f"/vms/{_name(name)}/snapshots/{_name(snapshot)}", None,
                        self._api._call_timeout(timeout))

    def restore_snapshot(self, name: str, snapshot: str,
                         timeout: Optional[float] = None) -> Restored:
        """A running VM continues from a RAM snapshot; a stopped one gets a
        disk-only snapshot's disk back (else Conflict)."""
        return Restored.from_json(self._api._call(
            "POST", f"/vms/{_name(name)}/snapshots/{_name(snapshot)}/restore", None,
            self._api._call_timeout(timeout)))

    def clone(self, name: str, new_name: str, snapshot: Optional[str] = None,
              start: Optional[bool] = None, timeout: Optional[float] = None) -> CloneResult:
        """A linked clone of VM name (of its snapshot, if given) called
        new_name, with a fresh identity; start=True starts it."""
        body = _drop_none({"name": new_name, "snapshot": snapshot, "start": start})
        return CloneResult.from_json(self._api._call("POST", f"/vms/{_name(name)}/clone", body,
                                                     self._api._call_timeout(timeout)))

    def fork(self, name: str, count: Optional[int] = None, prefix: Optional[str] = None,
             wait: Optional[bool] = None, timeout: Optional[float] = None) -> ForkResult:
        """count forks of a running VM (PREFIX-1..PREFIX-N) that resume its
        memory without a boot; wait: for each fork's SSH login (qvmd's
        default: true)."""
        body = _drop_none({"count": count, "prefix": prefix, "wait": wait})
        return ForkResult.from_json(self._api._call("POST", f"/vms/{_name(name)}/fork", body,
                                                    self._api._call_timeout(timeout)))


class SandboxApi:
    """client.sandbox: /api/v1/sandboxes, with virsh-sandbox's names."""

    def __init__(self, client: "QvmClient") -> None:
        self._api = _Api(client)

    def create_sandbox(
        self,
        source: Optional[str] = None,
        *,
        name: Optional[str] = None,
        agent_id: Optional[str] = None,
        ttl: Optional[str] = None,
        labels: Optional[Dict[str, str]] = None,
        network: Optional[str] = None,
        wait_cloud_init: Optional[bool] = None,
        timeout: Optional[float] = None,
        checkpoint_each: Optional[bool] = None,
        source_vm_name: Optional[str] = None,
    ) -> Sandbox:
        """Creates a sandbox from source (VM:SNAP, a VM, or an image) and
        brings it up. source_vm_name is virsh-sandbox's name for source.
        ttl: "30m" (Ns, Nm, Nh, Nd); network: "isolated" or "user";
        timeout: how long qvmd waits for it to come up (seconds, >= 1);
        checkpoint_each: a checkpoint before every command run in it (a
        command whose checkpoint fails does not run)."""
        if source is None:
            source = source_vm_name
        elif source_vm_name is not None and source_vm_name != source:
            raise ValueError("give source or source_vm_name, not both")
        if not isinstance(source, str) or not source:
            raise ValueError("create_sandbox needs a source (a VM, VM:SNAP or an image)")
        body = _drop_none({
            "from": source, "name": name, "agent": agent_id, "ttl": ttl, "labels": labels,
            "network": network, "waitCloudInit": wait_cloud_init,
            "timeoutMs": _timeout_ms(timeout, minimum_ms=1000), "checkpointEach": checkpoint_each,
        })
        return Sandbox.from_json(self._api._call("POST", "/sandboxes", body,
                                                 self._api._op_timeout(timeout)))

    def list_sandboxes(self) -> List[Sandbox]:
        """The sandboxes (an agent token: only its own)."""
        return list_of(Sandbox, self._api._call("GET", "/sandboxes"), "sandboxes")

    def get_sandbox(self, name: str) -> Sandbox:
        return Sandbox.from_json(self._api._call("GET", f"/sandboxes/{_name(name)}"))

    def run_sandbox_command(self, name: str, command: Command,
                            timeout: Optional[float] = None) -> ExecResult:
        """Runs a command in a sandbox: an argv list, or a string run by
        `sh -c`. timeout: the command's, in seconds."""
        body: Dict[str, Any] = {"argv": _argv(command)}
        ms = _timeout_ms(timeout)
        if ms is not None:
            body["timeoutMs"] = ms
        return ExecResult.from_json(self._api._call(
            "POST", f"/sandboxes/{_name(name)}/exec", body, self._api._op_timeout(timeout)))

    def run_sandbox_command_stream(self, name: str, command: Command,
                                   timeout: Optional[float] = None) -> Iterator[ExecFrame]:
        """run_sandbox_command as a stream: yields ExecFrame objects as the
        command runs, the last one of kind "exit". Leaving the loop early
        closes the connection."""
        return _exec_frames(self._api, f"/sandboxes/{_name(name)}/exec", command, timeout)

    def upload_file(self, name: str, path: str, data: bytes, mode: Optional[int] = None,
                    timeout: Optional[float] = None) -> Dict[str, Any]:
        """Writes data (at most 64 MiB) to the absolute path in the
        sandbox, with mode (default 0o644)."""
        return _upload(self._api, f"/sandboxes/{_name(name)}/files", path, data, mode, timeout)

    def download_file(self, name: str, path: str, timeout: Optional[float] = None) -> bytes:
        """The bytes of the file at the absolute path in the sandbox."""
        return _download(self._api, f"/sandboxes/{_name(name)}/files", path, timeout)

    def destroy_sandbox(self, name: str, timeout: Optional[float] = None) -> None:
        self._api._call("DELETE", f"/sandboxes/{_name(name)}", None,
                        self._api._call_timeout(timeout))


    def list_snapshots(self, name: str) -> List[Snapshot]:
        """A sandbox's snapshots and checkpoints, oldest first."""
        return list_of(Snapshot, self._api._call("GET", f"/sandboxes/{_name(name)}/snapshots"),
                       "snapshots")

    def checkpoint(self, name: str, timeout: Optional[float] = None) -> Snapshot:
        """Takes a checkpoint (a snapshot ckpt-N, with RAM when running);
        the oldest beyond qvm's limit are removed."""
        return Snapshot.from_json(self._api._call("POST", f"/sandboxes/{_name(name)}/checkpoint",
                                                  None, self._api._call_timeout(timeout)))

    def create_snapshot(self, name: str, timeout: Optional[float] = None) -> Snapshot:
        """virsh-sandbox's name for checkpoint(): qvmd names it (ckpt-N)."""
        return self.checkpoint(name, timeout)

    def rollback(self, name: str, to: Union[str, int, None] = None,
                 timeout: Optional[float] = None) -> Restored:
        """Back to the latest checkpoint, to checkpoint N (to=N), or to a
        snapshot by name."""
        body: Optional[Dict[str, Any]] = None
        if to is not None:
            if isinstance(to, bool) or not isinstance(to, (str, int)):
                raise ValueError("rollback to: a checkpoint number or a snapshot name")
            body = {"to": str(to)}
        return Restored.from_json(self._api._call("POST", f"/sandboxes/{_name(name)}/rollback",
                                                  body, self._api._call_timeout(timeout)))


class AuditApi:
    """client.audit: /api/v1/audit."""

    def __init__(self, client: "QvmClient") -> None:
        self._api = _Api(client)

    def list(self, vm: Optional[str] = None, agent: Optional[str] = None,
             since: Union[int, datetime.datetime, None] = None) -> List[AuditRecord]:
        """The audit records, oldest first: of one VM, one agent, and at or
        after since (a datetime, or microseconds since the epoch)."""
        q: Dict[str, str] = {}
        if vm is not None:
            q["vm"] = vm
        if agent is not None:
            q["agent"] = agent
        if since is not None:
            if isinstance(since, datetime.datetime):
                if since.tzinfo is None:
                    raise ValueError("since: give an aware datetime (with a timezone)")
                us = int(since.timestamp() * 1_000_000)
            elif isinstance(since, int) and not isinstance(since, bool):
                us = since
            else:
                raise ValueError("since: a datetime or an integer of microseconds")
            if us < 0:
                raise ValueError("since must not be before the epoch")
            q["sinceUs"] = str(us)
        path = "/audit" + ("?" + urlencode(q) if q else "")
        return list_of(AuditRecord, self._api._call("GET", path), "audit")


class SshKeysApi:
    """client.ssh_keys: qvm's SSH key store, /api/v1/ssh-keys (the private
    keys stay on the qvmd host: only public parts come back)."""

    def __init__(self, client: "QvmClient") -> None:
        self._api = _Api(client)

    def list(self) -> List[SshKey]:
        return list_of(SshKey, self._api._call("GET", "/ssh-keys"), "ssh keys")

    def get(self, name: str) -> SshKey:
        return SshKey.from_json(self._api._call("GET", f"/ssh-keys/{_name(name)}"))

    def generate(self, name: str, key_type: Optional[str] = None, comment: Optional[str] = None,
                 timeout: Optional[float] = None) -> SshKey:
        """A new pair: key_type "ed25519" (the default) or "rsa-4096"."""
        body = _drop_none({"name": name, "type": key_type, "comment": comment})
        return SshKey.from_json(self._api._call("POST", "/ssh-keys", body,
                                                self._api._call_timeout(timeout)))

    def add_to_vm(self, vm: str, key: str, timeout: Optional[float] = None) -> None:
        """Appends the key to the VM user's authorized_keys (once): over SSH into a
        running VM, else into its seed, which the guest reads at its next boot."""
        self._api._call("POST", f"/vms/{_name(vm)}/ssh-keys/{_name(key)}", None,
                        self._api._call_timeout(timeout))


_OP_ID_RE = re.compile(r"op-[0-9a-f]{32}")
_WAIT_MS_MAX = 60_000


def _op_id(op: Union[str, Operation]) -> str:
    op_id = op.id if isinstance(op, Operation) else op
    if not isinstance(op_id, str) or not _OP_ID_RE.fullmatch(op_id):
        raise ValueError("an operation id is 'op-' and 32 hex digits")
    return op_id


class OperationsApi:
    """client.operations: /api/v1/operations (an agent token sees only the
    operations it started)."""

    def __init__(self, client: "QvmClient") -> None:
        self._api = _Api(client)

    def list(self, limit: Optional[int] = None) -> List[Operation]:
        """Newest first."""
        q = ""
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise ValueError("limit must be a non-negative integer")
            q = "?" + urlencode({"limit": limit})
        return list_of(Operation, self._api._call("GET", "/operations" + q), "operations")

    def get(self, op: Union[str, Operation], wait: Optional[float] = None) -> Operation:
        """The operation; with wait (seconds, at most 60), once it has ended
        or wait has passed (a long poll)."""
        path = f"/operations/{_op_id(op)}"
        timeout = None
        if wait is not None:
            if not 0 <= wait <= _WAIT_MS_MAX / 1000:
                raise ValueError(f"wait must be 0..{_WAIT_MS_MAX // 1000} seconds")
            path += "?" + urlencode({"waitMs": int(wait * 1000)})
            timeout = self._api._client.timeout + wait
        return Operation.from_json(self._api._call("GET", path, None, timeout))

    def cancel(self, op: Union[str, Operation]) -> Operation:
        """Asks a running operation to stop (Conflict once it has ended);
        wait() tells how it ended."""
        return Operation.from_json(self._api._call("DELETE", f"/operations/{_op_id(op)}"))

    def wait(self, op: Union[str, Operation], timeout: Optional[float] = None) -> Operation:
        """Long-polls until the operation ends and returns it (whatever its
        state: check .ok, .error). QvmTimeout after timeout seconds
        (default: the client's op_timeout)."""
        limit = timeout if timeout is not None else self._api._client.op_timeout
        if not limit > 0:
            raise ValueError("timeout must be positive")
        deadline = time.monotonic() + limit
        while True:
            left = deadline - time.monotonic()
            cur = self.get(op, wait=max(0.0, min(left, _WAIT_MS_MAX / 1000)))
            if not cur.running:
                return cur
            if time.monotonic() >= deadline:
                raise QvmTimeout(f"operation {cur.id} still running after {limit:g} s")


class ImagesApi:
    """client.images: qvm's image store, /api/v1/images. Agent tokens may
    read it; pulls and removals need a full token."""

    def __init__(self, client: "QvmClient") -> None:
        self._api = _Api(client)
        self._client = client

    def list(self) -> List[Image]:
        return list_of(Image, self._api._call("GET", "/images"), "images")

    def get(self, ref: str) -> Image:
        return Image.from_json(self._api._call("GET", f"/images/{_name(ref)}"))

    def delete(self, ref: str) -> None:
        self._api._call("DELETE", f"/images/{_name(ref)}")

    def catalog(self) -> List[Dict[str, Any]]:
        doc = self._api._call("GET", "/images/catalog")
        if not isinstance(doc, list) or not all(isinstance(x, dict) for x in doc):
            raise ResponseError("images/catalog: expected a JSON array of objects")
        return doc

    def pull(self, source: str, name: Optional[str] = None, sha256: Optional[str] = None,
             sha512: Optional[str] = None, checksums: Optional[str] = None,
             wait: bool = False, timeout: Optional[float] = None) -> Operation:
        """Starts a pull (an operation). An http(s) URL needs one of sha256,
        sha512 or checksums (a SHA256SUMS URL). wait: return the operation
        once it has ended (client.operations.wait, with timeout)."""
        body = _drop_none({"source": source, "name": name, "sha256": sha256, "sha512": sha512,
                           "checksums": checksums})
        op = Operation.from_json(self._api._call("POST", "/images", body))
        return self._client.operations.wait(op, timeout) if wait else op


def _review_id(rid: str) -> str:
    if not isinstance(rid, str) or not _REVIEW_ID_RE.fullmatch(rid):
        raise ValueError("a review id is 12 lowercase hex digits")
    return rid


class ReviewsApi:
    """client.reviews: change sets with a human gate, /api/v1/reviews. An
    agent token makes change sets of its own sandboxes and reads those it
    made; approve, reject, edit_playbook and apply are the operator's."""

    def __init__(self, client: "QvmClient") -> None:
        self._api = _Api(client)

    def list(self, vm: Optional[str] = None) -> List[Review]:
        """The change sets (of one VM), oldest first."""
        path = "/reviews" + ("?" + urlencode({"vm": vm}) if vm is not None else "")
        return list_of(Review, self._api._call("GET", path), "reviews")

    def get(self, review_id: str) -> Review:
        return Review.from_json(self._api._call("GET", f"/reviews/{_review_id(review_id)}"))

    def create(self, vm: str, from_snapshot: Optional[str] = None, verify: Optional[bool] = None,
               timeout: Optional[float] = None) -> Review:
        """A change set of what changed in vm since from_snapshot (an internal
        snapshot; None: the image it was made from). verify: replay the
        playbook on a clone first (boots one; needs from_snapshot)."""
        body = _drop_none({"vm": vm, "from": from_snapshot, "verify": verify,
                           "timeoutMs": _timeout_ms(timeout, 1000)})
        return Review.from_json(self._api._call("POST", "/reviews", body,
                                                self._api._op_timeout(timeout)))

    def diff(self, review_id: str) -> Dict[str, Any]:
        """diff.json: {"changes", "packages", "units", "users", "groups"}."""
        doc = self._api._call("GET", f"/reviews/{_review_id(review_id)}/diff")
        if not isinstance(doc, dict):
            raise ResponseError("review diff: expected a JSON object")
        return doc

    def playbook(self, review_id: str) -> List[PlaybookFile]:
        """The playbook dir's files (playbook.yml and the files it copies)."""
        doc = self._api._call("GET", f"/reviews/{_review_id(review_id)}/playbook")
        if not isinstance(doc, dict):
            raise ResponseError("review playbook: expected a JSON object")
        return list_of(PlaybookFile, doc.get("files"), "review playbook files")

    def edit_playbook(self, review_id: str, text: str, timeout: Optional[float] = None) -> Review:
        """Replaces playbook.yml (checked by ansible-playbook --syntax-check:
        ValidationError with field "text" when it fails); an accepted change
        voids an approval."""
        if not isinstance(text, str) or len(text.encode("utf-8")) > _PLAYBOOK_MAX:
            raise ValueError(f"the playbook is a string of at most {_PLAYBOOK_MAX} bytes")
        doc = self._api._call("PUT", f"/reviews/{_review_id(review_id)}/playbook",
                              {"text": text}, self._api._call_timeout(timeout))
        if not isinstance(doc, dict):
            raise ResponseError("review edit: expected a JSON object")
        return Review.from_json(doc.get("review"))

    def _decide(self, verb: str, review_id: str, comment: Optional[str]) -> Review:
        if comment is not None and (not isinstance(comment, str) or
                                    len(comment.encode("utf-8")) > _COMMENT_MAX):
            raise ValueError(f"a comment is a string of at most {_COMMENT_MAX} bytes")
        return Review.from_json(self._api._call(
            "POST", f"/reviews/{_review_id(review_id)}/{verb}", _drop_none({"comment": comment})))

    def approve(self, review_id: str, comment: Optional[str] = None) -> Review:
        """Forbidden (class SelfApproval) when this qvmd's agent made or
        edited it."""
        return self._decide("approve", review_id, comment)

    def reject(self, review_id: str, comment: Optional[str] = None) -> Review:
        return self._decide("reject", review_id, comment)

    def apply(self, review_id: str, target: Optional[str] = None,
              timeout: Optional[float] = None) -> Dict[str, Any]:
        """Runs the approved playbook on target (a running VM; None: the
        change set's own): {"exit", "ok", "changed", "failed", ...}."""
        body = _drop_none({"target": target, "timeoutMs": _timeout_ms(timeout, 1000)})
        doc = self._api._call("POST", f"/reviews/{_review_id(review_id)}/apply", body,
                              self._api._op_timeout(timeout))
        if not isinstance(doc, dict):
            raise ResponseError("review apply: expected a JSON object")
        return doc


class QvmClient:
    """A client of qvmd.

    socket_path: qvmd's UNIX socket (the default, where qvmd puts it:
    $QVM_QVMD_SOCKET, $QVM_RUNTIME_DIR/qvmd.sock, $XDG_RUNTIME_DIR/qvm/qvmd.sock,
    /run/qvm/qvmd.sock). base_url, token: TCP instead, with a bearer token.
    timeout: seconds for a quick call; op_timeout: for a call that waits on a
    VM and is given no timeout of its own. max_body: the largest answer read
    (bytes); a larger one raises ResponseTooLarge.
    """

    def __init__(
        self,
        socket_path: Optional[str] = None,
        *,
        base_url: Optional[str] = None,
        token: Optional[str] = None,
        timeout: float = 30.0,
        op_timeout: float = 900.0,
        max_body: int = DEFAULT_MAX_BODY,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        if socket_path is not None and base_url is not None:
            raise ValueError("give socket_path or base_url, not both")
        if token is not None:
            if base_url is None:
                raise ValueError("a token is for TCP (base_url); the UNIX socket uses the caller's uid")
            if not _TOKEN_RE.fullmatch(token):
                raise ValueError("a token is 16-256 characters of [A-Za-z0-9._~+/=-]")
        if not timeout > 0 or not op_timeout > 0:
            raise ValueError("timeouts must be positive")
        self.timeout = float(timeout)
        self.op_timeout = float(op_timeout)
        self.transport = Transport(socket_path=socket_path, base_url=base_url, token=token,
                                   max_body=max_body, ssl_context=ssl_context)
        self.vms = VmsApi(self)
        self.sandbox = SandboxApi(self)
        self.audit = AuditApi(self)
        self.ssh_keys = SshKeysApi(self)
        self.operations = OperationsApi(self)
        self.images = ImagesApi(self)
        self.reviews = ReviewsApi(self)

    def vm_ip(self, name: str) -> VmAddress:
        """client.vms.ip."""
        return self.vms.ip(name)

    def console(self, name: str, tail: Optional[int] = None) -> Console:
        """client.vms.console."""
        return self.vms.console(name, tail)

    def openapi(self) -> Dict[str, Any]:
        """qvmd's OpenAPI document."""
        doc = _Api(self)._call("GET", "/openapi.json")
        if not isinstance(doc, dict):
            raise ResponseError("openapi.json: expected a JSON object")
        return doc

    def __repr__(self) -> str:
        return f"QvmClient({self.transport.where()})"
