#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Sets what POST /api/v1/vms/{name}/ssh-keys/{key} says of a VM that is not
running: the key goes into its seed. Idempotent: run it again after a merge.

    scripts/openapi/keys_seed.py [api/openapi.json]
"""
import json
import os
import sys

path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "api", "openapi.json")
with open(path, encoding="utf-8") as f:
    doc = json.load(f)

op = doc["paths"]["/api/v1/vms/{name}/ssh-keys/{key}"]["post"]
op["summary"] = "Add a stored key to a VM"
op["description"] = (
    "Appends the key's public line to the VM user's authorized_keys, once: over SSH into a "
    "running guest, else into the VM's seed, which its cloud-init reads at the next boot (the "
    "first one or a later one). 409: the VM is not running and has no seed of qvm's, or it is "
    "a sandbox (certificates only).")

with open(path, "w", encoding="utf-8") as f:
    json.dump(doc, f, indent=2, ensure_ascii=False)
    f.write("\n")
