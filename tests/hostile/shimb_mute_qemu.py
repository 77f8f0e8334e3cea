#!/usr/bin/env python3
# A QEMU whose main loop stalls, as the shim sees it: it answers QMP on fd 3
# like QEMU 7.2 started with -S until it gets the command
# "x-qvm-test-stall", which it never answers; from then on it reads and
# answers nothing, until killed (SIGKILL, or SIGTERM); for a VM whose name
# starts with "silent" it sends not even the greeting (qvm passes QEMU no
# environment of the test's). Any other call (no
# -S: a probe of the binary) goes to the real QEMU.
import json, os, socket, sys

if "-S" not in sys.argv[1:]:
    os.execvp("qemu-system-x86_64", ["qemu-system-x86_64"] + sys.argv[1:])

listener = socket.socket(fileno=3)
conn, _ = listener.accept()
running = False
if any(a.startswith("guest=silent") for a in sys.argv):  # not even the greeting
    while conn.recv(65536):
        pass
    sys.exit(0)


def send(obj):
    conn.sendall((json.dumps(obj) + "\n").encode())


send({"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": ""},
              "capabilities": []}})
buf = b""
stalled = False
while True:
    data = conn.recv(65536)
    if not data:
        sys.exit(0)
    if stalled:
        continue
    buf += data
    while b"\n" in buf and not stalled:
        line, buf = buf.split(b"\n", 1)
        if not line.strip():
            continue
        cmd = json.loads(line)
        name, cid = cmd.get("execute"), cmd.get("id")
        if name == "x-qvm-test-stall":
            stalled = True
            break
        ret = {}
        if name == "query-status":
            ret = {"status": "running" if running else "prelaunch", "running": running,
                   "singlestep": False}
        send({"return": ret, "id": cid})
        if name == "cont":
            running = True
        elif name in ("system_powerdown", "quit"):
            sys.exit(0)
