#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# A stand-in QEMU guest agent on a unix socket: answers guest-sync-delimited
# and guest-network-get-interfaces (an interface with MAC argv[2] holding
# 10.77.0.99, after badly typed ones). Touches argv[3] once it listens.
import json, os, socket, sys

path, mac, ready = sys.argv[1:4]
if os.path.exists(path):
    os.unlink(path)
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
srv.listen(4)
open(ready, "w").close()
# Badly typed entries first: the guest agent is guest-controlled input, and
# qvm must skip them (a null here once crashed `qvm ip`).
ifaces = [
    {"name": "bad0", "hardware-address": None},
    {"name": "bad1", "hardware-address": 7, "ip-addresses": None},
    {"name": "bad2", "hardware-address": mac,
     "ip-addresses": [None, {"ip-address-type": None, "ip-address": None},
                      {"ip-address-type": "ipv4", "ip-address": 12},
                      {"ip-address-type": "ipv4", "ip-address": "x" * 300}]},
    {"name": "lo", "hardware-address": "00:00:00:00:00:00",
     "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8}]},
    {"name": "eth0", "hardware-address": mac,
     "ip-addresses": [{"ip-address-type": "ipv6", "ip-address": "fe80::1", "prefix": 64},
                      {"ip-address-type": "ipv4", "ip-address": "10.77.0.99", "prefix": 24}]},
]
while True:
    conn, _ = srv.accept()
    for line in conn.makefile("rb"):
        line = line.strip(b"\xff").strip()
        if not line:
            continue
        msg = json.loads(line)
        if msg["execute"] == "guest-sync-delimited":
            reply = b"\xff" + json.dumps({"return": msg["arguments"]["id"]}).encode()
        else:
            reply = json.dumps({"return": ifaces}).encode()
        conn.sendall(reply + b"\n")
    conn.close()
