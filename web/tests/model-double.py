#!/usr/bin/env python3
"""A stand-in for the AI provider in the browser test: an OpenAI-compatible
chat-completions endpoint on 127.0.0.1 that answers from the last user turn. Only the
external model is replaced; the API, its store and the feed are the real ones.

    python3 web/tests/model-double.py PORT
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Model(BaseHTTPRequestHandler):
    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
        asked = next((m["content"] for m in reversed(request["messages"]) if m["role"] == "user"), "")
        body = json.dumps({
            "choices": [{"message": {"role": "assistant", "content": f"(AI) About \"{asked}\": a replacement lid ships today."}}],
            "usage": {"total_tokens": 42},
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), Model).serve_forever()
