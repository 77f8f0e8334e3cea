#!/usr/bin/env python3
# Regenerates the committed DHCP corpora (payloads, without Ethernet/IP/UDP):
#   dhcp/        hostile inputs: every one must be dropped and counted
#   dhcp-seeds/  well-formed messages for the fuzzer to start from
# The VM's MAC in these files is 0a:11:22:33:44:55 (tests/net use the same),
# the server 10.77.0.1.
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MAC = bytes.fromhex("0a1122334455")
SERVER = bytes([10, 77, 0, 1])
COOKIE = bytes.fromhex("63825363")


def header(op=1, htype=1, hlen=6, mac=MAC, ciaddr=b"\0" * 4, giaddr=b"\0" * 4, flags=0):
    h = struct.pack("!BBBBIHH", op, htype, hlen, 0, 0x12345678, 0, flags)
    h += ciaddr + b"\0" * 4 + b"\0" * 4 + giaddr
    h += mac + b"\0" * 10 + b"\0" * 64 + b"\0" * 128
    assert len(h) == 236
    return h + COOKIE


def opt(code, value):
    return bytes([code, len(value)]) + value


def msg(mtype, *opts, end=True, **kw):
    body = header(**kw) + opt(53, bytes([mtype])) + b"".join(opts)
    return body + (b"\xff" if end else b"")


hostile = {
    "empty": b"",
    "truncated-header": header()[:100],
    "truncated-cookie": header()[:239],
    "bad-cookie": header()[:236] + b"\x63\x82\x53\x64" + opt(53, b"\x01") + b"\xff",
    "bad-htype": msg(1, htype=6),
    "bad-hlen": msg(1, hlen=16),
    "option-overrun": msg(1, end=False) + bytes([12, 200]) + b"abc",
    "option-length-missing": msg(1, end=False) + bytes([12]),
    "overload": msg(1, opt(52, b"\x03")),
    "missing-end": msg(1, opt(12, b"vm"), end=False),
    "missing-end-padded": msg(1, end=False) + b"\0" * 40,
    "bad-len-message-type": header() + opt(53, b"\x01\x01") + b"\xff",
    "bad-len-server-id": msg(3, opt(54, b"\x0a\x4d\x00")),
    "bad-len-requested-ip": msg(3, opt(50, b"\x0a\x4d\x00\x0a\x00")),
    "bad-len-lease-time": msg(1, opt(51, b"\x00\x10")),
    "bad-len-dns": msg(1, opt(6, b"\x01\x02\x03\x04\x05\x06")),
    "bad-len-client-id": msg(1, opt(61, b"\x01")),
    "bad-len-hostname-empty": msg(1, opt(12, b"")),
    "duplicate-message-type": msg(1, opt(53, b"\x03")),
    "duplicate-requested-ip": msg(3, opt(50, b"\x0a\x4d\x00\x0a"), opt(50, b"\x0a\x4d\x00\x0b")),
    "bad-message-type-0": header() + opt(53, b"\x00") + b"\xff",
    "bad-message-type-200": header() + opt(53, b"\xc8") + b"\xff",
    "bootp-no-message-type": header() + b"\xff",
    "reply-op": msg(5, op=2),
    "foreign-chaddr": msg(1, mac=bytes.fromhex("0a9999999999")),
    "relayed": msg(1, giaddr=bytes([10, 99, 0, 1])),
    "request-other-server": msg(3, opt(54, bytes([10, 77, 0, 2])), opt(50, bytes([10, 77, 0, 10]))),
    "request-no-address": msg(3),
    "offer-from-client": msg(2),
}

seeds = {
    "discover": msg(1, opt(55, bytes([1, 3, 6, 12, 15, 26, 28, 51, 58, 59])), opt(61, b"\x01" + MAC)),
    "discover-broadcast": msg(1, flags=0x8000),
    "request-selecting": msg(3, opt(54, SERVER), opt(50, bytes([10, 77, 0, 10])), opt(12, b"guest-1")),
    "request-init-reboot": msg(3, opt(50, bytes([10, 77, 0, 10]))),
    "request-renew": msg(3, ciaddr=bytes([10, 77, 0, 10])),
    "request-foreign-ip": msg(3, opt(50, bytes([192, 168, 5, 5]))),
    "request-hostile-hostname": msg(3, opt(50, bytes([10, 77, 0, 10])), opt(12, b"../../x;rm -rf /\n")),
    "release": msg(7, opt(54, SERVER), ciaddr=bytes([10, 77, 0, 10])),
    "decline": msg(4, opt(54, SERVER), opt(50, bytes([10, 77, 0, 10]))),
    "inform": msg(8, ciaddr=bytes([10, 77, 0, 50])),
}

for folder, cases in (("dhcp", hostile), ("dhcp-seeds", seeds)):
    os.makedirs(os.path.join(HERE, folder), exist_ok=True)
    for name, data in cases.items():
        with open(os.path.join(HERE, folder, name + ".bin"), "wb") as f:
            f.write(data)
