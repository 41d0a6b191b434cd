#!/usr/bin/env python3
"""A webhook receiver for the local stack: verifies each delivery's Standard Webhooks
signature (docs/webhooks.md), prints its event, and answers 204 (401 when the
signature does not verify). Standard library only.

    WEBHOOK_SECRET=whsec_... python3 scripts/webhook-receiver.py [port]   # default 8090
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


def verify(secret: str, headers, body: bytes, tolerance: int = 300) -> bool:
    msg_id, ts = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "0")
    if abs(time.time() - int(ts)) > tolerance:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(mac).decode()
    signatures = headers.get("webhook-signature", "").split()
    return any(hmac.compare_digest(expected, s) for s in signatures)


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        ok = verify(os.environ["WEBHOOK_SECRET"], self.headers, body)
        event = json.loads(body) if ok else {}
        print(
            ("verified" if ok else "REFUSED (bad signature)"),
            self.headers.get("webhook-id"),
            event.get("type"),
            f"room {event.get('room_id')} seq {event.get('seq')}",
            flush=True,
        )
        self.send_response(204 if ok else 401)
        self.end_headers()

    def log_message(self, *_):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8090
    print(f"receiving on http://127.0.0.1:{port}/", flush=True)
    HTTPServer(("127.0.0.1", port), Receiver).serve_forever()
