"""A scraper's Accept header, for a real Prometheus that cannot send it: a small HTTP proxy on 127.0.0.1.

Debian's Prometheus (2.42) always asks for OpenMetrics first and has no `scrape_protocols`, so it never
exercises the classic text format. Pointed at this proxy, it scrapes the exporter through it: every GET
is forwarded to the target with the Accept header replaced, and the answer comes back as it was (status,
Content-Type, Content-Encoding, body). The exporter's own negotiation chooses the format, as it would
for a text-only scraper; nothing in the exporter is patched.

    with AcceptProxy(target_port, TEXT_ONLY_ACCEPT) as proxy:
        ... scrape 127.0.0.1:{proxy.port} ...
        proxy.exchanges   # (Accept received, Accept sent, status, Content-Type, Content-Encoding)
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection", "content-length"}


class AcceptProxy:
    def __init__(self, target_port: int, accept: str, *, timeout: float = 10.0) -> None:
        self.target_port = target_port
        self.accept = accept
        self.timeout = timeout
        self.exchanges: list[tuple[str, str, int, str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def __enter__(self) -> AcceptProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(self.timeout)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"accept"}}
                headers["Accept"] = proxy.accept
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=proxy.timeout)
                try:
                    upstream.request("GET", self.path, headers=headers)
                    answer = upstream.getresponse()
                    body = answer.read()
                finally:
                    upstream.close()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in HOP_BY_HOP | {"date", "server"}:  # send_response sets its own
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with proxy._lock:
                    proxy.exchanges.append((self.headers.get("Accept", ""), proxy.accept, answer.status,
                                            answer.getheader("Content-Type", ""),
                                            answer.getheader("Content-Encoding", "")))

            def log_message(self, format: str, *args: Any) -> None:  # quiet: the test reads `exchanges`
                pass

        return Handler
