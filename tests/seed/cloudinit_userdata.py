#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Reads a user-data file the way cloud-init does and prints, as JSON, its
parts (content type, filename) and the cloud-config merged from them: the
code is cloud-init's own (user_data.UserDataProcessor, the cloud-config part
handler with its Merge-Type mergers), from the Debian package the guests
run, on PYTHONPATH.

    cloudinit_userdata.py USER-DATA
"""
import json
import sys
import tempfile

from cloudinit import handlers, helpers, safeyaml, user_data, util
from cloudinit.handlers.cloud_config import CloudConfigPartHandler

with open(sys.argv[1], "rb") as f:
    blob = f.read()
with tempfile.TemporaryDirectory(prefix="qvm-ci-ud-") as tmp:
    paths = helpers.Paths({"cloud_dir": tmp})
    msg = user_data.UserDataProcessor(paths).process(blob)
    h = CloudConfigPartHandler(paths)
    h.cloud_fn = tmp + "/cloud-config.txt"
    h.handle_part(None, handlers.CONTENT_START, None, None, None, None)
    parts = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        name = part.get_filename()
        parts.append([ctype, name])
        if ctype in h.list_types():
            h.handle_part(None, ctype, name, util.fully_decoded_payload(part), None, dict(part))
    h.handle_part(None, handlers.CONTENT_END, None, None, None, None)
    with open(h.cloud_fn, encoding="utf-8") as f:
        config = safeyaml.load(f.read()) or {}
json.dump({"parts": parts, "config": config}, sys.stdout, ensure_ascii=False, default=str)
