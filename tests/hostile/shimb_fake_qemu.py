#!/usr/bin/env python3
# A compromised QEMU (or a guest that makes QEMU send events as fast as it
# likes: DEVICE_TRAY_MOVED is not rate-limited) as the shim sees it: it
# answers QMP on fd 3 like QEMU 7.2 started with -S, and once the shim sent
# cont it floods events, some of them 200 KiB long, until told to
# system_powerdown (SHUTDOWN, then exit) or quit, or killed. Any other call
# (no -S: a probe of the binary) goes to the real QEMU.
import json, os, socket, sys, threading

if "-S" not in sys.argv[1:]:
    os.execvp("qemu-system-x86_64", ["qemu-system-x86_64"] + sys.argv[1:])

listener = socket.socket(fileno=3)
conn, _ = listener.accept()
lock = threading.Lock()
running = False
stop = threading.Event()


def send(obj):
    with lock:
        conn.sendall((json.dumps(obj) + "\n").encode())


def ts():
    return {"seconds": 1, "microseconds": 0}


def flood():
    small = "".join(json.dumps({"event": "DEVICE_TRAY_MOVED", "timestamp": ts(),
                                "data": {"device": "cd0", "id": "cd0", "tray-open": i % 2 == 0}})
                    + "\n" for i in range(200)).encode()
    big = (json.dumps({"event": "DEVICE_TRAY_MOVED", "timestamp": ts(),
                       "data": {"device": "x" * (200 << 10), "tray-open": True}}) + "\n").encode()
    while not stop.is_set():
        try:
            with lock:
                conn.sendall(small)
                conn.sendall(big)
        except OSError:
            return


send({"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": ""},
              "capabilities": []}})
buf = b""
while True:
    data = conn.recv(65536)
    if not data:
        sys.exit(0)
    buf += data
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        if not line.strip():
            continue
        cmd = json.loads(line)
        name, cid = cmd.get("execute"), cmd.get("id")
        ret = {}
        if name == "query-status":
            ret = {"status": "running" if running else "prelaunch", "running": running,
                   "singlestep": False}
        send({"return": ret, "id": cid})
        if name == "cont" and not running:
            running = True
            send({"event": "RESUME", "timestamp": ts()})
            threading.Thread(target=flood, daemon=True).start()
        elif name in ("system_powerdown", "quit"):
            stop.set()
            if name == "system_powerdown":
                send({"event": "SHUTDOWN", "timestamp": ts(),
                      "data": {"guest": True, "reason": "guest-shutdown"}})
            os._exit(0)
