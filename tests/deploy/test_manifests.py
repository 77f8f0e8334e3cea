#!/usr/bin/env python3
"""deploy/: the Nomad job and the Kubernetes manifests, parsed and checked
(issue 18). No Nomad or Kubernetes is run: what is checked is what would
make them wrong for qvm: the task's command is `qvm run NAME`, the
scheduler's kill wait is longer than qvm run's --timeout (else its SIGKILL
comes before the guest could power off), SIGTERM is the kill signal, the
image is pulled before the VM runs, and every volume mount names a volume
that exists (and the store is the node's /var/lib/qvm). Each check is also
run against a broken copy, which it must reject."""
import re
import sys
from pathlib import Path

try:
    import yaml
except ImportError:
    sys.exit("test_manifests: python3-yaml is missing (scripts/deps.sh test installs it with ansible-core)")

SRC = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
failures = []


def check(cond, what):
    if not cond:
        raise AssertionError(what)


# --- a small HCL reader: blocks, attributes, strings, lists -----------------

TOKEN = re.compile(r"""
    (?P<ws>\s+) | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*") | (?P<heredoc><<-?(?P<tag>[A-Z]+)\n.*?\n\s*(?P=tag)\b)
  | (?P<num>-?\d+(?:\.\d+)?) | (?P<ident>[A-Za-z_][\w.\-]*)
  | (?P<punct>[{}\[\]=,()])
""", re.X | re.S)


def hcl_tokens(text):
    pos, out = 0, []
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"unexpected {text[pos:pos + 20]!r} at offset {pos}")
        pos = m.end()
        kind = m.lastgroup if m.lastgroup != "tag" else "heredoc"
        if kind in ("ws", "comment"):
            continue
        val = m.group(kind)
        if kind == "string":
            val = bytes(val[1:-1], "utf-8").decode("unicode_escape")
        out.append((kind, val))
    return out


class Hcl:
    def __init__(self, text):
        self.t, self.i = hcl_tokens(text), 0

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else (None, None)

    def take(self, kind=None, val=None):
        k, v = self.peek()
        if k is None or (kind and k != kind) or (val and v != val):
            raise ValueError(f"expected {val or kind}, got {v!r} (token {self.i})")
        self.i += 1
        return v

    def body(self, closing):
        """attrs: {name: value}; blocks: [(type, labels, body)]"""
        attrs, blocks = {}, []
        while self.peek()[1] != closing:
            if self.peek()[0] is None:
                raise ValueError("unbalanced braces: the file ends inside a block")
            name = self.take("ident")
            if self.peek()[1] == "=":
                self.take(val="=")
                if name in attrs:
                    raise ValueError(f"attribute {name} given twice")
                attrs[name] = self.value()
            else:
                labels = []
                while self.peek()[0] == "string":
                    labels.append(self.take("string"))
                self.take(val="{")
                blocks.append((name, labels, self.body("}")))
                self.take(val="}")
        return {"attrs": attrs, "blocks": blocks}

    def value(self):
        k, v = self.peek()
        if v == "[":
            self.take(val="[")
            items = []
            while self.peek()[1] != "]":
                items.append(self.value())
                if self.peek()[1] == ",":
                    self.take(val=",")
            self.take(val="]")
            return items
        if v == "{":
            self.take(val="{")
            b = self.body("}")
            self.take(val="}")
            return b
        if k in ("string", "num", "ident", "heredoc"):
            self.i += 1
            return v
        raise ValueError(f"unexpected {v!r} as a value")


def hcl_parse(text):
    p = Hcl(text)
    b = p.body(None)
    return b


def blocks(body, kind):
    return [(labels, b) for k, labels, b in body["blocks"] if k == kind]


def one(body, kind, where):
    found = blocks(body, kind)
    check(len(found) == 1, f"{where}: {len(found)} '{kind}' blocks, want 1")
    return found[0][1]


def seconds(v, what):
    m = re.fullmatch(r"(\d+)(s|m|h)", str(v))
    check(m, f"{what} '{v}' is not a duration like 90s")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]


def qvm_run_timeout(argv, what):
    """--timeout of a `qvm run NAME` command line; qvm's default is 60."""
    argv = [str(a) for a in argv]
    check(len(argv) >= 2 and Path(argv[0]).name == "qvm" and argv[1] == "run",
          f"{what}: the command is {argv[:2]}, not qvm run")
    names = [a for a in argv[2:] if not a.startswith("--") and not a.isdigit()]
    check(len(names) == 1, f"{what}: qvm run needs one vm name, got {names}")
    if "--timeout" in argv:
        i = argv.index("--timeout")
        check(i + 1 < len(argv) and argv[i + 1].isdigit(), f"{what}: --timeout without seconds")
        return int(argv[i + 1])
    return 60


def check_nomad(text):
    hcl = hcl_parse(text)
    jobs = blocks(hcl, "job")
    check(len(jobs) == 1 and jobs[0][0], "one labelled job block")
    job = jobs[0][1]
    check(job["attrs"].get("type") == "service", "job type is service")
    groups = blocks(job, "group")
    check(groups, "the job has a group")
    for glabels, group in groups:
        tasks = {labels[0]: t for labels, t in blocks(group, "task")}
        main = [n for n, t in tasks.items()
                if one(t, "config", n)["attrs"].get("command") == "qvm"]
        check(len(main) == 1, f"group {glabels}: one task whose command is qvm, got {main}")
        t = tasks[main[0]]
        check(t["attrs"].get("driver") == "raw_exec", "the qvm task's driver is raw_exec")
        cfg = one(t, "config", main[0])["attrs"]
        timeout = qvm_run_timeout(["qvm"] + list(cfg.get("args", [])), "nomad task")
        check(t["attrs"].get("kill_signal") == "SIGTERM", "kill_signal is SIGTERM")
        kt = seconds(t["attrs"].get("kill_timeout", "5s"), "kill_timeout")
        check(kt > timeout, f"kill_timeout {kt} s is not longer than qvm run --timeout {timeout} s")
        pre = [n for n, b in tasks.items()
               if blocks(b, "lifecycle") and one(b, "lifecycle", n)["attrs"].get("hook") == "prestart"]
        check(pre, "a prestart task")
        pre_cmd = " ".join(str(a) for n in pre
                           for a in one(tasks[n], "config", n)["attrs"].get("args", []))
        check("qvm image pull" in pre_cmd, "the prestart task runs qvm image pull")
        for n in pre:
            check(one(tasks[n], "lifecycle", n)["attrs"].get("sidecar") in ("false", None),
                  "the prestart task is not a sidecar")


def check_pod_spec(spec, where):
    grace = spec.get("terminationGracePeriodSeconds", 30)
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    check(len(vols) == len(spec.get("volumes", [])), f"{where}: two volumes share a name")
    qvm = [c for c in spec.get("containers", []) if c.get("command", [""])[0] == "qvm"]
    check(len(qvm) == 1, f"{where}: one container whose command is qvm")
    c = qvm[0]
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    argv = [re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), a)
            for a in c["command"] + c.get("args", [])]
    check(not any("$(" in a for a in argv), f"{where}: an unset $(VAR) in {argv}")
    timeout = qvm_run_timeout(argv, where)
    check(grace > timeout,
          f"{where}: terminationGracePeriodSeconds {grace} is not longer than --timeout {timeout}")
    check(c.get("readinessProbe"), f"{where}: the qvm container has no readinessProbe")
    inits = spec.get("initContainers", [])
    check(any("qvm image pull" in " ".join(i.get("command", []) + i.get("args", []))
              for i in inits), f"{where}: no initContainer runs qvm image pull")
    store = [n for n, v in vols.items() if v.get("hostPath", {}).get("path") == "/var/lib/qvm"]
    check(len(store) == 1, f"{where}: no hostPath volume for the node's /var/lib/qvm")
    for cont in inits + spec["containers"]:
        mounts = cont.get("volumeMounts", [])
        for m in mounts:
            check(m["name"] in vols, f"{where}: {cont['name']} mounts '{m['name']}', no such volume")
        check(any(m["name"] == store[0] and m["mountPath"] == "/var/lib/qvm" for m in mounts),
              f"{where}: {cont['name']} does not mount the image store at /var/lib/qvm")
        sc = cont.get("securityContext", {})
        check(sc.get("privileged") is True or "/dev/kvm" in [m["mountPath"] for m in mounts],
              f"{where}: {cont['name']} is neither privileged nor given /dev/kvm")


def check_kube(docs, kind):
    docs = [d for d in docs if d]
    check(len(docs) == 1 and docs[0].get("kind") == kind, f"one {kind}")
    d = docs[0]
    if kind == "Pod":
        check_pod_spec(d["spec"], "Pod")
    else:
        check(d["apiVersion"] == "apps/v1", "DaemonSet apiVersion apps/v1")
        sel = d["spec"]["selector"]["matchLabels"]
        labels = d["spec"]["template"]["metadata"]["labels"]
        check(all(labels.get(k) == v for k, v in sel.items()),
              "the DaemonSet's selector does not match its template's labels")
        check_pod_spec(d["spec"]["template"]["spec"], "DaemonSet")


def check_systemd(text):
    m = re.search(r"^ExecStart=(.*)$", text, re.M)
    check(m, "qvm@.service has an ExecStart")
    timeout = qvm_run_timeout(m.group(1).split(), "qvm@.service")
    stop = re.search(r"^TimeoutStopSec=(\d+)$", text, re.M)
    check(stop and int(stop.group(1)) > timeout, "TimeoutStopSec is longer than --timeout")


def run(name, fn, arg, must_fail=False):
    try:
        fn(arg)
    except (AssertionError, ValueError, KeyError, TypeError, IndexError, yaml.YAMLError) as e:
        if not must_fail:
            failures.append(f"{name}: {e}")
        else:
            print(f"ok: {name} rejected ({e})")
        return
    if must_fail:
        failures.append(f"{name}: a broken copy passed the check")
    else:
        print(f"ok: {name}")


nomad = (SRC / "deploy/nomad/qvm.nomad.hcl").read_text()
pod = (SRC / "deploy/kubernetes/pod.yaml").read_text()
ds = (SRC / "deploy/kubernetes/daemonset.yaml").read_text()
unit = (SRC / "deploy/systemd/qvm@.service.in").read_text()
kube = lambda kind: lambda text: check_kube(list(yaml.safe_load_all(text)), kind)

run("nomad job", check_nomad, nomad)
run("pod", kube("Pod"), pod)
run("daemonset", kube("DaemonSet"), ds)
run("qvm@.service", check_systemd, unit)

# The checks must be able to fail: each broken copy is rejected.
cut = nomad.rindex("}")
run("nomad: the last brace missing", check_nomad, nomad[:cut] + nomad[cut + 1:], True)
extra = nomad.index("kill_signal  =")
run("nomad: a stray closing brace", check_nomad, nomad[:extra] + "}\n" + nomad[extra:], True)
run("nomad: an unterminated string", check_nomad, nomad.replace('"SIGTERM"', '"SIGTERM', 1), True)
run("nomad: kill_timeout shorter than --timeout", check_nomad,
    nomad.replace('kill_timeout = "90s"', 'kill_timeout = "30s"'), True)
run("nomad: --timeout raised past kill_timeout", check_nomad,
    nomad.replace('"--timeout", "60"', '"--timeout", "120"'), True)
run("nomad: kill_signal SIGINT", check_nomad, nomad.replace('"SIGTERM"', '"SIGINT"'), True)
run("nomad: no prestart pull", check_nomad, nomad.replace('hook    = "prestart"', 'hook = "poststart"'), True)
run("nomad: docker driver", check_nomad, nomad.replace('driver = "raw_exec"\n\n      config {\n        command = "qvm"',
                                                       'driver = "docker"\n\n      config {\n        command = "qvm"'), True)
run("pod: grace period 30", kube("Pod"), pod.replace("terminationGracePeriodSeconds: 90", "terminationGracePeriodSeconds: 30"), True)
run("pod: no grace period (30 by default)", kube("Pod"), pod.replace("terminationGracePeriodSeconds: 90", ""), True)
run("pod: a mount of no volume", kube("Pod"), pod.replace("- name: qvm-run\n      hostPath", "- name: qvm-rundir\n      hostPath"), True)
run("pod: the store elsewhere", kube("Pod"), pod.replace("path: /var/lib/qvm", "path: /srv/qvm"), True)
run("pod: not qvm run", kube("Pod"), pod.replace('["qvm", "run",', '["qvm", "start",'), True)
run("pod: no pre-pull", kube("Pod"), pod.replace("qvm image pull", "qvm image ls"), True)
run("pod: no readiness", kube("Pod"), pod.replace("readinessProbe:", "livenessProbe:"), True)
run("pod: not privileged", kube("Pod"), pod.replace("privileged: true", "privileged: false"), True)
run("pod: bad yaml", kube("Pod"), pod.replace("  containers:", "containers:\n  - : ["), True)
run("daemonset: selector mismatch", kube("DaemonSet"), ds.replace("qvm.vm: agent\n  updateStrategy", "qvm.vm: other\n  updateStrategy"), True)
run("daemonset: grace period 60", kube("DaemonSet"), ds.replace("terminationGracePeriodSeconds: 90", "terminationGracePeriodSeconds: 60"), True)
run("qvm@.service: TimeoutStopSec 30", check_systemd, unit.replace("TimeoutStopSec=90", "TimeoutStopSec=30"), True)

for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
