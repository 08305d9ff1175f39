"""A JSON-over-HTTP server on loopback for protocol tests (servers CI cannot run)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JsonHandler(BaseHTTPRequestHandler):
    """Subclasses answer ``respond(body) -> dict`` to each POSTed JSON body."""

    def log_message(self, *args):
        pass

    def respond(self, body: dict) -> dict:
        raise NotImplementedError

    def send_json(self, answer: dict, status: int = 200) -> None:
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0))
                          or b"{}")
        self.send_json(self.respond(body))


@contextmanager
def serve(handler: type[JsonHandler]) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1; yields the OpenAI-style base URL (…/v1)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
