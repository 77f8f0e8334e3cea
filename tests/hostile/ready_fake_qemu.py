#!/usr/bin/env python3
# A guest that opens and closes qvm's readiness port (org.qvm.ready.0) in a
# tight loop, as the shim and `qvm up` see it through a compromised QEMU:
# QEMU 7.2 itself sends at most one VSERPORT_CHANGE a second per port (its
# monitor throttles guest-triggerable events); this one sends them without
# end, as fast as the socket takes them. It answers
# QMP on fd 3 like QEMU 7.2 started with -S; once the shim sent cont it
# writes a line to the serial log, floods VSERPORT_CHANGE (open, close, ...
# for the port's id), and plays sshd on the SSH port forward: for the first
# BANNER_AFTER seconds it accepts and drops connections (slirp with nothing
# listening in the guest), then it sends an SSH banner and closes (no SSH
# behind it: up then fails in its ssh phase). It writes the moment (epoch
# seconds) its banner became available to READY_FAKE_BANNER_FILE. Any other call (no -S: a
# probe of the binary) goes to the real QEMU.
import json, os, re, socket, sys, threading, time

if "-S" not in sys.argv[1:]:
    os.execvp("qemu-system-x86_64", ["qemu-system-x86_64"] + sys.argv[1:])

BANNER_AFTER = float(os.environ.get("READY_FAKE_BANNER_AFTER", "4"))
# Set: this QEMU dies that many seconds after cont (before its banner).
EXIT_AFTER = os.environ.get("READY_FAKE_EXIT_AFTER")
# Set: the banner comes in two parts, "SS" and the rest that many seconds
# later (a guest holding a probe on a partial banner), and no flood.
SPLIT = os.environ.get("READY_FAKE_BANNER_SPLIT")
args = " ".join(sys.argv[1:])
serial_log = re.search(r"logfile=((?:[^,]|,,)+)", args).group(1).replace(",,", ",")
ssh_port = int(re.search(r"hostfwd=tcp:127\.0\.0\.1:(\d+)-:22", args).group(1))
port_id = re.search(r"virtserialport,[^ ]*id=([^, ]+),name=org\.qvm\.ready\.0", args).group(1)

listener = socket.socket(fileno=3)
ssh = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ssh.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ssh.bind(("127.0.0.1", ssh_port))
ssh.listen(64)
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
    # 2 KiB of padding in each (a compromised QEMU sends what it likes): a
    # slow shim (ASan) still reaches the events cap within seconds.
    burst = "".join(json.dumps({"event": "VSERPORT_CHANGE", "timestamp": ts(),
                                "data": {"id": port_id, "open": i % 2 == 0, "pad": "x" * 2048}})
                    + "\n" for i in range(200)).encode()
    while not stop.is_set():
        try:
            with lock:
                conn.sendall(burst)
        except OSError:
            return


def sshd():
    ready_at = time.monotonic() + BANNER_AFTER
    with open(os.environ["READY_FAKE_BANNER_FILE"], "w") as f:
        f.write("%.3f\n" % (time.time() + BANNER_AFTER))
    while True:
        c, _ = ssh.accept()
        if time.monotonic() >= ready_at and SPLIT:
            threading.Thread(target=split_banner, args=(c,), daemon=True).start()
            continue
        if time.monotonic() >= ready_at:
            try:
                c.sendall(b"SSH-2.0-fake\r\n")
            except OSError:
                pass
        c.close()


def split_banner(c):
    try:
        c.sendall(b"SS")
        time.sleep(float(SPLIT))
        c.sendall(b"H-2.0-fake\r\n")
        time.sleep(1)
    except OSError:
        pass
    c.close()


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
            with open(serial_log, "a") as f:
                f.write("fake guest booting\n")
            if not SPLIT:
                threading.Thread(target=flood, daemon=True).start()
            threading.Thread(target=sshd, daemon=True).start()
            if EXIT_AFTER:
                threading.Timer(float(EXIT_AFTER), lambda: os._exit(1)).start()
        elif name in ("system_powerdown", "quit"):
            stop.set()
            if name == "system_powerdown":
                send({"event": "SHUTDOWN", "timestamp": ts(),
                      "data": {"guest": True, "reason": "guest-shutdown"}})
            os._exit(0)
