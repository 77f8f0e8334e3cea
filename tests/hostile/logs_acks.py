#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Floods a bridge with DHCPACKs for one MAC, each giving it another address,
# as a hostile DHCP server (or a guest's accomplice) on the bridge would.
# Usage: logs_acks.py BRIDGE MAC COUNT [NET]; the addresses are NET.x.y
# (default 10.99); prints the last one given.
import socket, struct, sys, time

bridge, mac_text, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
net = sys.argv[4] if len(sys.argv) > 4 else "10.99"
mac = bytes(int(x, 16) for x in mac_text.split(":"))


def csum(data):
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def ack(yiaddr, xid):
    bootp = struct.pack("!BBBBIHHIIII16s64s128s", 2, 1, 6, 0, xid, 0, 0, 0,
                        yiaddr, 0, 0, mac + b"\0" * 10, b"", b"")
    opts = (struct.pack("!I", 0x63825363) + bytes([53, 1, 5]) +
            bytes([54, 4]) + socket.inet_aton("10.99.0.1") +
            bytes([51, 4]) + struct.pack("!I", 3600) + bytes([255]))
    payload = bootp + opts + b"\0" * 20
    udp = struct.pack("!HHHH", 67, 68, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     socket.inet_aton("10.99.0.1"), socket.inet_aton("255.255.255.255"))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return mac + bytes.fromhex("02aabbccddee") + b"\x08\x00" + ip + udp


s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((bridge, 0))
last = ""
for i in range(count):
    addr = "%s.%d.%d" % (net, i // 250, i % 250 + 1)
    s.send(ack(struct.unpack("!I", socket.inet_aton(addr))[0], i + 1))
    last = addr
    # Paced: the watcher reports only the newest of the ACKs it finds queued
    # together, so a burst would be one event.
    time.sleep(0.002)
print(last)
