"""webapp/brokers/http.py against a real local HTTP server: one attempt per call, no cookies."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from webapp.brokers import http


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    calls: list[tuple[str, str, dict[str, str], bytes]] = []

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.calls.append((self.command, self.path, dict(self.headers), body))
        if self.path.startswith("/drop"):  # read the request, then hang up without an answer
            self.close_connection = True
            self.connection.close()
            return
        answer = b'{"status": "success"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        if self.path.startswith("/cookie"):
            self.send_header("Set-Cookie", "session=secret123; Path=/")
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_DELETE = _handle

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    Recorder.calls = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", Recorder.calls
    httpd.shutdown()
    httpd.server_close()


def test_a_post_whose_connection_drops_raises_once_and_is_never_retried(server):
    url, calls = server
    http.send("GET", url + "/warm", headers={}, timeout=5)  # a kept-alive connection in the pool
    with pytest.raises(http.TransportError) as caught:
        http.send("POST", url + "/drop", headers={}, form={"tag": "ONCE"}, timeout=5)
    assert not isinstance(caught.value, http.Timeout) and caught.value.sent
    assert [(method, path, body) for method, path, _, body in calls] == [
        ("GET", "/warm", b""),
        ("POST", "/drop", b"tag=ONCE"),
    ]
    with pytest.raises(http.TransportError):  # not even a GET, which a retrying client would repeat
        http.send("GET", url + "/drop", headers={}, timeout=5)
    assert http.send("GET", url + "/after", headers={}, timeout=5).status == 200  # the pool still works
    assert [path for _, path, _, _ in calls] == ["/warm", "/drop", "/drop", "/after"]


def test_a_cookie_from_the_server_is_never_sent_back(server):
    url, calls = server
    first = http.send("GET", url + "/cookie", headers={}, timeout=5)
    assert first.headers["set-cookie"] == "session=secret123; Path=/"
    http.send("POST", url + "/cookie", headers={}, body=b"x", timeout=5)
    http.send("GET", url + "/other", headers={}, timeout=5)
    assert len(calls) == 3
    assert all("cookie" not in {k.lower() for k in headers} for _, _, headers, _ in calls)


def test_forms_queries_and_headers_are_sent_as_requests_sent_them(server):
    url, calls = server
    answer = http.send(
        "POST",
        url + "/orders?x=1",
        headers={"X-Kite-Version": "3"},
        timeout=5,
        form={"tradingsymbol": "M&M", "price": "1.5", "tag": None, "note": "a b/c"},
        query=[("i", "NSE:INFY"), ("i", "NSE:M&M")],
    )
    assert (answer.status, answer.text, answer.headers["content-type"]) == (
        200,
        '{"status": "success"}',
        "application/json",
    )
    method, path, headers, body = calls[0]
    assert (method, path, body) == (
        "POST",
        "/orders?x=1&i=NSE%3AINFY&i=NSE%3AM%26M",
        b"tradingsymbol=M%26M&price=1.5&note=a+b%2Fc",
    )
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert (headers["X-Kite-Version"], headers["Accept-Encoding"], headers["Accept"]) == ("3", "gzip, deflate", "*/*")
    http.send("DELETE", url + "/orders/1", headers={"Content-Type": "application/json"}, timeout=5)
    assert calls[1][2]["Content-Length"] == "0" and calls[1][2]["Content-Type"] == "application/json"


def test_a_refused_connection_was_never_sent():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(http.TransportError) as caught:
        http.send("POST", f"http://127.0.0.1:{port}/orders", headers={}, body=b"x", timeout=5)
    assert not caught.value.sent and not isinstance(caught.value, http.Timeout)
