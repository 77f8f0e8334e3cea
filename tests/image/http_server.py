#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A local HTTP server for the image tests: serves files with Range support
and injects faults on request. Listens on 127.0.0.1 only.

    http_server.py DIR PORTFILE

writes the port it bound to PORTFILE once it listens, then serves DIR's files
at /NAME. Control (plain GET, answered with JSON):
    /_ctl/fault?path=/NAME&mode=MODE[&after=N][&times=K][&code=C][&to=URL][&rate=B]
        MODE: cut      send the headers and `after` bytes, then close
              status   answer with status `code` (404, 500, 503, ...)
              stall    send the headers and `after` bytes, then nothing
              redirect 302 to `to`
              norange  ignore Range (always 200 with the whole file)
              slow     send at most `rate` bytes per second
        `times`: how many requests the fault applies to (default 1; 0: all)
    /_ctl/clear      drop every fault
    /_ctl/log        every request so far: [{path, range, status, sent}, ...]
"""
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = sys.argv[1]
PORTFILE = sys.argv[2]
LOCK = threading.Lock()
FAULTS = {}  # path -> dict
LOG = []


def take_fault(path):
    with LOCK:
        f = FAULTS.get(path)
        if not f:
            return None
        if f["times"] > 0:
            f["times"] -= 1
            if f["times"] == 0:
                del FAULTS[path]
        return dict(f)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply_json(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def record(self, status, sent):
        with LOCK:
            LOG.append({"path": self.path, "range": self.headers.get("Range"),
                        "status": status, "sent": sent})

    def control(self, url):
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        if url.path == "/_ctl/fault":
            with LOCK:
                FAULTS[q["path"]] = {"mode": q["mode"], "after": int(q.get("after", 0)),
                                     "times": int(q.get("times", 1)),
                                     "code": int(q.get("code", 500)), "to": q.get("to", ""),
                                     "rate": int(q.get("rate", 0))}
            return self.reply_json({"ok": True})
        if url.path == "/_ctl/clear":
            with LOCK:
                FAULTS.clear()
            return self.reply_json({"ok": True})
        if url.path == "/_ctl/log":
            with LOCK:
                return self.reply_json(list(LOG))
        self.send_error(404)

    def do_HEAD(self):
        self.serve(head=True)

    def do_GET(self):
        self.serve(head=False)

    def serve(self, head):
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/_ctl/"):
            return self.control(url)
        fault = take_fault(url.path)
        if fault and fault["mode"] == "status":
            body = b"injected error\n"
            self.send_response(fault["code"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return self.record(fault["code"], 0)
        if fault and fault["mode"] == "redirect":
            self.send_response(302)
            self.send_header("Location", fault["to"])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return self.record(302, 0)
        name = urllib.parse.unquote(url.path.lstrip("/"))
        path = os.path.join(ROOT, name)
        if "/" in name or name.startswith(".") or not os.path.isfile(path):
            self.send_error(404)
            return self.record(404, 0)
        size = os.path.getsize(path)
        start, end, status = 0, size - 1, 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and not (fault and fault["mode"] == "norange"):
            a, _, b = rng[6:].partition("-")
            start = int(a) if a else 0
            end = int(b) if b else size - 1
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % size)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return self.record(416, 0)
            status = 206
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        self.end_headers()
        if head:
            return self.record(status, 0)
        sent = 0
        limit = length
        if fault and fault["mode"] in ("cut", "stall"):
            limit = min(length, fault["after"])
        rate = fault["rate"] if fault and fault["mode"] == "slow" else 0
        t0 = time.monotonic()
        try:
            with open(path, "rb") as f:
                f.seek(start)
                while sent < limit:
                    chunk = f.read(min(65536, limit - sent, rate or 65536))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    if rate:
                        ahead = sent / rate - (time.monotonic() - t0)
                        if ahead > 0:
                            time.sleep(ahead)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.record(status, sent)
        if fault and fault["mode"] == "stall":
            time.sleep(3600)
        if fault and fault["mode"] in ("cut", "stall"):
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    tmp = PORTFILE + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, PORTFILE)
    srv.serve_forever()


if __name__ == "__main__":
    main()
