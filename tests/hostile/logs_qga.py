#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# A hostile QEMU guest agent on a unix socket (the approach of
# tests/net/fake_qga.py): answers guest-sync-delimited properly, and
# guest-network-get-interfaces with what argv[4] (the mode) says, every
# interface carrying the VM's MAC (argv[2]) so that qvm looks at it.
# Touches argv[3] once it listens.
#   inject: shell and option injections and malformed addresses only
#   mixed:  the same, then one valid address (10.77.0.42) last
#   huge:   one "address" of 1 MiB
#   many:   10,000 interfaces, each with an injection
import json, os, socket, sys

path, mac, ready, mode = sys.argv[1:5]
BAD = ["$(id>p)", "1.2.3.4; rm -rf /", "999.1.1.1", "`touch p`", "10.0.0.1\n-oProxyCommand=id",
       " 10.0.0.1", "10.0.0.1 ", "0x7f.1", "1.2.3", "::ffff:1.2.3.4", "", "\u202e1.2.3.4"]


def addrs(values):
    return [{"ip-address-type": "ipv4", "ip-address": v, "prefix": 24} for v in values]


if mode == "inject":
    ifaces = [{"name": "eth0", "hardware-address": mac, "ip-addresses": addrs(BAD)}]
elif mode == "mixed":
    ifaces = [{"name": "eth0", "hardware-address": mac, "ip-addresses": addrs(BAD + ["10.77.0.42"])}]
elif mode == "huge":
    ifaces = [{"name": "eth0", "hardware-address": mac, "ip-addresses": addrs(["1" * (1 << 20)])}]
elif mode == "many":
    ifaces = [{"name": "eth%d" % i, "hardware-address": mac, "ip-addresses": addrs(["$(id>p)"])}
              for i in range(10000)]
else:
    sys.exit("unknown mode " + mode)
reply_ifaces = json.dumps({"return": ifaces}).encode()

if os.path.exists(path):
    os.unlink(path)
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
srv.listen(4)
open(ready, "w").close()
while True:
    conn, _ = srv.accept()
    try:
        for line in conn.makefile("rb"):
            line = line.strip(b"\xff").strip()
            if not line:
                continue
            msg = json.loads(line)
            if msg["execute"] == "guest-sync-delimited":
                reply = b"\xff" + json.dumps({"return": msg["arguments"]["id"]}).encode()
            else:
                reply = reply_ifaces
            conn.sendall(reply + b"\n")
    except OSError:
        pass
    conn.close()
