"""Typed views of qvmd's JSON answers (api/openapi.json's schemas).

Each from_json checks the type of every member it reads and raises
ResponseError naming a bad one; members it does not know stay in `raw`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Type, TypeVar

from .errors import ResponseError, printable

T = TypeVar("T")


def _obj(doc: Any, what: str) -> Dict[str, Any]:
    if not isinstance(doc, dict):
        raise ResponseError(f"{what}: expected a JSON object, got {type(doc).__name__}")
    return doc


def _get(doc: Dict[str, Any], key: str, typ: Type[T], what: str, required: bool = False,
         nullable: bool = True) -> Optional[T]:
    if key not in doc:
        if required:
            raise ResponseError(f"{what}: the member '{key}' is missing")
        return None
    v = doc[key]
    if v is None and nullable and not required:
        return None
    # bool is an int in Python: an integer member must not take true/false.
    if typ is int and isinstance(v, bool):
        raise ResponseError(f"{what}: '{key}' is not an integer")
    if not isinstance(v, typ):
        raise ResponseError(f"{what}: '{key}' is not {typ.__name__}: {printable(repr(v), 64)}")
    return v


def _labels(doc: Dict[str, Any], what: str) -> Dict[str, str]:
    labels = _get(doc, "labels", dict, what) or {}
    for k, v in labels.items():
        if not isinstance(v, str):
            raise ResponseError(f"{what}: label '{printable(k, 64)}' is not a string")
    return dict(labels)


def _name(doc: Dict[str, Any], what: str) -> str:
    name = _get(doc, "name", str, what, required=True)
    assert name is not None
    return name


@dataclass(frozen=True)
class Vm:
    """A VM as qvmd describes it (libqvm's VM info, keys in camelCase)."""

    name: str
    state: str
    uuid: Optional[str] = None
    cpus: Optional[int] = None
    memory_mib: Optional[int] = None
    agent: Optional[str] = None
    labels: Dict[str, str] = field(default_factory=dict)
    sandbox: bool = False
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: Any) -> "Vm":
        d = _obj(doc, "vm")
        what = f"vm '{printable(str(d.get('name')), 64)}'"
        state = _get(d, "state", str, what, required=True)
        assert state is not None
        return cls(
            name=_name(d, "vm"),
            state=state,
            uuid=_get(d, "uuid", str, what),
            cpus=_get(d, "cpus", int, what),
            memory_mib=_get(d, "memoryMib", int, what),
            agent=_get(d, "agent", str, what),
            labels=_labels(d, what),
            sandbox=bool(_get(d, "sandbox", bool, what)),
            raw=d,
        )


@dataclass(frozen=True)
class Sandbox:
    """A sandbox: a VM with an agent id and a deadline."""

    name: str
    state: Optional[str] = None
    agent: Optional[str] = None
    labels: Dict[str, str] = field(default_factory=dict)
    expires_at: Optional[str] = None
    expires_at_us: Optional[int] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: Any) -> "Sandbox":
        d = _obj(doc, "sandbox")
        what = f"sandbox '{printable(str(d.get('name')), 64)}'"
        return cls(
            name=_name(d, "sandbox"),
            state=_get(d, "state", str, what),
            agent=_get(d, "agent", str, what),
            labels=_labels(d, what),
            expires_at=_get(d, "expiresAt", str, what),
            expires_at_us=_get(d, "expiresAtUs", int, what),
            raw=d,
        )


def _b64(d: Dict[str, Any], key: str) -> Optional[bytes]:
    s = _get(d, key, str, "exec result")
    if s is None:
        return None
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ResponseError(f"exec result: '{key}' is not base64") from e


@dataclass(frozen=True)
class ExecResult:
    """A command's outcome. exit_code is None when it died of a signal
    (signal names it). stdout and stderr are text; output that was not
    UTF-8 comes neutralized there, and exact in stdout_bytes/stderr_bytes.
    checkpoint names the checkpoint taken just before the command (a
    sandbox created with checkpoint_each), else None."""

    exit_code: Optional[int]
    signal: Optional[str]
    stdout: str
    stderr: str
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_ms: int = 0
    stdout_bytes: Optional[bytes] = field(default=None, repr=False)
    stderr_bytes: Optional[bytes] = field(default=None, repr=False)
    checkpoint: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def stdout_raw(self) -> bytes:
        """The exact bytes of stdout (as far as they were kept)."""
        return self.stdout_bytes if self.stdout_bytes is not None else self.stdout.encode()

    def stderr_raw(self) -> bytes:
        return self.stderr_bytes if self.stderr_bytes is not None else self.stderr.encode()

    @classmethod
    def from_json(cls, doc: Any) -> "ExecResult":
        d = _obj(doc, "exec result")
        what = "exec result"
        for key in ("exitCode", "signal", "stdout", "stderr", "durationMs"):
            if key not in d:
                raise ResponseError(f"{what}: the member '{key}' is missing")
        stdout = _get(d, "stdout", str, what, required=True)
        stderr = _get(d, "stderr", str, what, required=True)
        duration = _get(d, "durationMs", int, what, required=True)
        assert stdout is not None and stderr is not None and duration is not None
        return cls(
            exit_code=_get(d, "exitCode", int, what),
            signal=_get(d, "signal", str, what),
            stdout=stdout,
            stderr=stderr,
            stdout_truncated=bool(_get(d, "stdoutTruncated", bool, what)),
            stderr_truncated=bool(_get(d, "stderrTruncated", bool, what)),
            duration_ms=duration,
            stdout_bytes=_b64(d, "stdoutBase64"),
            stderr_bytes=_b64(d, "stderrBase64"),
            checkpoint=_get(d, "checkpoint", str, what),
        )


@dataclass(frozen=True)
class AuditRecord:
    """One line of the audit log (include/qvm/audit.h; docs/cli.md "qvm audit")."""

    seq: int
    time: str
    action: str
    vm: Optional[str]
    actor: Dict[str, Any] = field(default_factory=dict)
    details: Dict[str, Any] = field(default_factory=dict)
    prev: str = ""
    hash: str = ""
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def agent(self) -> Optional[str]:
        a = self.actor.get("agent")
        return a if isinstance(a, str) else None

    @classmethod
    def from_json(cls, doc: Any) -> "AuditRecord":
        d = _obj(doc, "audit record")
        what = "audit record"
        seq = _get(d, "seq", int, what, required=True)
        t = _get(d, "time", str, what, required=True)
        action = _get(d, "action", str, what, required=True)
        assert seq is not None and t is not None and action is not None
        return cls(
            seq=seq,
            time=t,
            action=action,
            vm=_get(d, "vm", str, what),
            actor=_get(d, "actor", dict, what) or {},
            details=_get(d, "details", dict, what) or {},
            prev=_get(d, "prev", str, what) or "",
            hash=_get(d, "hash", str, what) or "",
            raw=d,
        )


@dataclass(frozen=True)
class SshKey:
    """A key in qvm's key store (its public part: the private key is never
    sent). key_type: "ed25519" or "rsa-4096"."""

    name: str
    key_type: str
    public_key: str
    fingerprint: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: Any) -> "SshKey":
        d = _obj(doc, "ssh key")
        what = f"ssh key '{printable(str(d.get('name')), 64)}'"
        key_type = _get(d, "type", str, what, required=True)
        public_key = _get(d, "publicKey", str, what, required=True)
        assert key_type is not None and public_key is not None
        return cls(name=_name(d, "ssh key"), key_type=key_type, public_key=public_key,
                   fingerprint=_get(d, "fingerprint", str, what), raw=d)


@dataclass(frozen=True)
class Snapshot:
    """A snapshot of a VM (or a sandbox's checkpoint, ckpt-N). ram: with the
    guest's memory and devices (restoring it resumes the running guest)."""

    name: str
    ram: bool
    created_at: Optional[str] = None
    vm_state: Optional[str] = None
    vm_state_size: Optional[int] = None
    disk_bytes: Optional[int] = None
    parent: Optional[str] = None
    current: bool = False
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: Any) -> "Snapshot":
        d = _obj(doc, "snapshot")
        what = f"snapshot '{printable(str(d.get('name')), 64)}'"
        ram = _get(d, "ram", bool, what, required=True)
        assert ram is not None
        return cls(
            name=_name(d, "snapshot"),
            ram=ram,
            created_at=_get(d, "createdAt", str, what),
            vm_state=_get(d, "vmState", str, what),
            vm_state_size=_get(d, "vmStateSize", int, what),
            disk_bytes=_get(d, "diskBytes", int, what),
            parent=_get(d, "parent", str, what),
            current=bool(_get(d, "current", bool, what)),
            raw=d,
        )


@dataclass(frozen=True)
class Restored:
    """A restore or rollback: the VM (name) went back to the snapshot restored."""

    name: str
    restored: str

    @classmethod
    def from_json(cls, doc: Any) -> "Restored":
        d = _obj(doc, "restore")
        restored = _get(d, "restored", str, "restore", required=True)
        assert restored is not None
        return cls(name=_name(d, "restore"), restored=restored)


@dataclass(frozen=True)
class CloneResult:
    """A linked clone of source (of its snapshot, when one was given)."""

    name: str
    source: str
    snapshot: Optional[str] = None
    image: Optional[str] = None
    uuid: Optional[str] = None
    mac: Optional[str] = None
    state: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: Any) -> "CloneResult":
        d = _obj(doc, "clone")
        what = "clone"
        source = _get(d, "source", str, what, required=True)
        assert source is not None
        return cls(
            name=_name(d, what),
            source=source,
            snapshot=_get(d, "snapshot", str, what),
            image=_get(d, "image", str, what),
            uuid=_get(d, "uuid", str, what),
            mac=_get(d, "mac", str, what),
            state=_get(d, "state", str, what),
            raw=d,
        )


@dataclass(frozen=True)
class Fork:
    """One fork: a VM running from its source's memory."""

    name: str
    uuid: Optional[str] = None
    ssh_port: Optional[int] = None
    resumed_ms: Optional[int] = None
    ready_ms: Optional[int] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: Any) -> "Fork":
        d = _obj(doc, "fork")
        what = "fork"
        return cls(
            name=_name(d, what),
            uuid=_get(d, "uuid", str, what),
            ssh_port=_get(d, "sshPort", int, what),
            resumed_ms=_get(d, "resumedMs", int, what),
            ready_ms=_get(d, "readyMs", int, what),
            raw=d,
        )


@dataclass(frozen=True)
class ForkResult:
    """The forks of a running VM (source), and what making them took."""

    source: str
    forks: List[Fork]
    image: Optional[str] = None
    paused_ms: Optional[int] = None
    state_bytes: Optional[int] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: Any) -> "ForkResult":
        d = _obj(doc, "fork result")
        what = "fork result"
        source = _get(d, "source", str, what, required=True)
        forks = _get(d, "forks", list, what, required=True)
        assert source is not None and forks is not None
        return cls(
            source=source,
            forks=[Fork.from_json(f) for f in forks],
            image=_get(d, "image", str, what),
            paused_ms=_get(d, "pausedMs", int, what),
            state_bytes=_get(d, "stateBytes", int, what),
            raw=d,
        )


@dataclass(frozen=True)
class Operation:
    """Long work of qvmd (docs/qvmd.md, "Operations"): an image pull, or a
    create or start asked with Prefer: respond-async. state: running,
    succeeded, failed, cancelled or interrupted; result: what the route would
    have answered (succeeded); error: the problem+json object (failed,
    cancelled); interrupted: the qvmd running it stopped, and the state is
    what the next qvmd found."""

    id: str
    kind: str
    target: str
    state: str
    interrupted: bool = False
    cancel_requested: bool = False
    created_at: Optional[str] = None
    updated_at: Optional[str] = None
    phase: Optional[str] = None
    done: int = 0
    total: int = 0
    result: Any = None
    error: Optional[Dict[str, Any]] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def ok(self) -> bool:
        return self.state == "succeeded"

    @classmethod
    def from_json(cls, doc: Any) -> "Operation":
        d = _obj(doc, "operation")
        what = f"operation '{printable(str(d.get('id')), 64)}'"
        req = {k: _get(d, k, str, what, required=True) for k in ("id", "kind", "target", "state")}
        progress = _get(d, "progress", dict, what) or {}
        done = _get(progress, "done", int, what + " progress")
        total = _get(progress, "total", int, what + " progress")
        return cls(
            id=str(req["id"]), kind=str(req["kind"]), target=str(req["target"]),
            state=str(req["state"]),
            interrupted=bool(_get(d, "interrupted", bool, what)),
            cancel_requested=bool(_get(d, "cancelRequested", bool, what)),
            created_at=_get(d, "createdAt", str, what),
            updated_at=_get(d, "updatedAt", str, what),
            phase=_get(progress, "phase", str, what + " progress"),
            done=done or 0,
            total=total or 0,
            result=d.get("result"),
            error=_get(d, "error", dict, what),
            raw=d,
        )


@dataclass(frozen=True)
class Image:
    """An image of qvm's store (qvm image ls)."""

    digest: str
    names: List[str] = field(default_factory=list)
    format: Optional[str] = None
    virtual_size: Optional[int] = None
    file_size: Optional[int] = None
    source: Optional[str] = None
    used_by: List[str] = field(default_factory=list)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: Any) -> "Image":
        d = _obj(doc, "image")
        what = f"image '{printable(str(d.get('digest')), 80)}'"
        digest = _get(d, "digest", str, what, required=True)
        names = _get(d, "names", list, what) or []
        used_by = _get(d, "usedBy", list, what) or []
        for x in names + used_by:
            if not isinstance(x, str):
                raise ResponseError(f"{what}: a name that is not a string")
        return cls(
            digest=str(digest), names=list(names), format=_get(d, "format", str, what),
            virtual_size=_get(d, "virtualSize", int, what),
            file_size=_get(d, "fileSize", int, what),
            source=_get(d, "source", str, what), used_by=list(used_by), raw=d,
        )


def list_of(cls: Any, doc: Any, what: str) -> List[Any]:
    if not isinstance(doc, list):
        raise ResponseError(f"{what}: expected a JSON array, got {type(doc).__name__}")
    return [cls.from_json(x) for x in doc]


@dataclass(frozen=True)
class ExecFrame:
    """One frame of a streamed command (run_sandbox_command_stream,
    VmsApi.exec_stream). kind is "stdout" or "stderr" (text: the output as
    text, neutralized when it was not UTF-8; data: its exact bytes),
    "truncated" (stream names the output that passed 1 MiB; the rest of it
    is dropped) or "exit", the last one (exit_code, None when the command
    died of signal; duration_ms; checkpoint)."""

    kind: str
    text: str = ""
    data: bytes = field(default=b"", repr=False)
    stream: Optional[str] = None
    exit_code: Optional[int] = None
    signal: Optional[str] = None
    duration_ms: int = 0
    checkpoint: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.kind == "exit" and self.exit_code == 0

    @classmethod
    def from_json(cls, doc: Any) -> "ExecFrame":
        what = "exec frame"
        d = _obj(doc, what)
        if "stream" in d:
            stream = _get(d, "stream", str, what, required=True)
            if stream not in ("stdout", "stderr"):
                raise ResponseError(f"{what}: unknown stream {printable(repr(stream), 32)}")
            text = _get(d, "data", str, what, required=True)
            assert stream is not None and text is not None
            exact = _b64(d, "dataBase64")
            return cls(kind=stream, text=text, data=exact if exact is not None else text.encode())
        if "truncated" in d:
            return cls(kind="truncated", stream=_get(d, "truncated", str, what, required=True))
        if "exit" in d:
            e = _obj(d["exit"], what)
            return cls(kind="exit", exit_code=_get(e, "exitCode", int, what),
                       signal=_get(e, "signal", str, what),
                       duration_ms=_get(e, "durationMs", int, what) or 0,
                       checkpoint=_get(e, "checkpoint", str, what))
        raise ResponseError(f"{what}: not a frame qvm knows: {printable(repr(d), 64)}")


@dataclass(frozen=True)
class VmAddress:
    """GET /vms/{name}/ip: the guest's IPv4 address (None with user
    networking: then ssh_host:ssh_port is the host's forward to its SSH)
    and where it came from (source)."""

    ip: Optional[str]
    source: str
    ssh_host: Optional[str] = None
    ssh_port: Optional[int] = None

    @classmethod
    def from_json(cls, doc: Any) -> "VmAddress":
        what = "vm address"
        d = _obj(doc, what)
        source = _get(d, "source", str, what, required=True)
        assert source is not None
        return cls(ip=_get(d, "ip", str, what), source=source,
                   ssh_host=_get(d, "sshHost", str, what), ssh_port=_get(d, "sshPort", int, what))


@dataclass(frozen=True)
class Console:
    """The serial console log's last bytes: text (neutralized when it was
    not UTF-8), data (the exact bytes), truncated (the log has more before
    them)."""

    text: str
    data: bytes = field(repr=False)
    truncated: bool

    @classmethod
    def from_json(cls, doc: Any) -> "Console":
        what = "console"
        d = _obj(doc, what)
        text = _get(d, "text", str, what, required=True)
        assert text is not None
        exact = _b64(d, "textBase64")
        return cls(text=text, data=exact if exact is not None else text.encode(),
                   truncated=bool(_get(d, "truncated", bool, what)))


@dataclass(frozen=True)
class Review:
    """A change set (include/qvm/review.h; docs/qvmd.md "Reviews"): what qvm
    diff found in a VM and the Ansible playbook that makes the same change,
    behind a human gate. status: pending, pending-with-differences,
    approved, rejected or applied."""

    id: str
    vm: str
    status: str
    author: Dict[str, Any] = field(default_factory=dict)
    created: Optional[str] = None
    changes: Optional[int] = None
    diff_sha256: Optional[str] = None
    playbook_sha256: Optional[str] = None
    approval: Optional[Dict[str, Any]] = None
    history: List[Dict[str, Any]] = field(default_factory=list)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def author_agent(self) -> Optional[str]:
        a = self.author.get("agent")
        return a if isinstance(a, str) else None

    @classmethod
    def from_json(cls, doc: Any) -> "Review":
        d = _obj(doc, "review")
        what = f"review '{printable(str(d.get('id')), 16)}'"
        rid = _get(d, "id", str, what, required=True)
        vm = _get(d, "vm", str, what, required=True)
        status = _get(d, "status", str, what, required=True)
        assert rid is not None and vm is not None and status is not None
        history = _get(d, "history", list, what) or []
        return cls(
            id=rid,
            vm=vm,
            status=status,
            author=_get(d, "author", dict, what) or {},
            created=_get(d, "created", str, what),
            changes=_get(d, "changes", int, what),
            diff_sha256=_get(d, "diffSha256", str, what),
            playbook_sha256=_get(d, "playbookSha256", str, what),
            approval=_get(d, "approval", dict, what),
            history=[h for h in history if isinstance(h, dict)],
            raw=d,
        )


@dataclass(frozen=True)
class PlaybookFile:
    """One file of a change set's playbook dir. text: the bytes when they
    are UTF-8, else neutralized (data: the exact bytes, when they were
    not); truncated: qvmd gave only the first part (or none)."""

    path: str
    size: int
    text: Optional[str]
    truncated: bool
    data: Optional[bytes] = None

    @classmethod
    def from_json(cls, doc: Any) -> "PlaybookFile":
        d = _obj(doc, "playbook file")
        what = "playbook file"
        path = _get(d, "path", str, what, required=True)
        size = _get(d, "size", int, what, required=True)
        assert path is not None and size is not None
        b64 = _get(d, "textBase64", str, what)
        data = None
        if b64 is not None:
            try:
                data = base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError) as e:
                raise ResponseError(f"{what} '{printable(path, 64)}': bad textBase64") from e
        return cls(path=path, size=size, text=_get(d, "text", str, what),
                   truncated=bool(_get(d, "truncated", bool, what)), data=data)
