"""RemoteMonitor: POSTs against a real HTTP server on 127.0.0.1, form and JSON, errors as warnings."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import urllib.parse
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence.callbacks import RemoteMonitor


class Recorder(http.server.BaseHTTPRequestHandler):
    requests: list = []
    status = 200

    def do_POST(self):  # noqa: N802 (http.server's name)
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length).decode()
        type(self).requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)

    class Handler(Recorder):
        requests = []
        status = 200

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", Handler
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def make_model():
    torch.manual_seed(0)
    model = cadence.Sequential(nn.Linear(3, 1))
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    return model


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype(np.float32)
    return x, x.sum(axis=1, keepdims=True)


def test_form_posts_of_every_epoch_end_to_end(server):
    root, handler = server
    x, y = data()
    history = make_model().fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[RemoteMonitor(root=root)])
    assert [r["path"] for r in handler.requests] == ["/publish/epoch/end/"] * 2
    for epoch, request in enumerate(handler.requests):
        assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
        form = urllib.parse.parse_qs(request["body"])
        assert list(form) == ["data"]
        assert json.loads(form["data"][0]) == {
            "epoch": epoch, "loss": history.history["loss"][epoch], "mae": history.history["mae"][epoch],
        }


def test_json_body_custom_path_and_headers(server):
    root, handler = server
    monitor = RemoteMonitor(root=root, path="/events", headers={"X-Run": "abc"}, send_as_json=True)
    monitor.on_epoch_end(3, {"loss": 0.5, "acc": np.float32(0.25), "vec": np.array([1.0, 2.0]),
                             "t": torch.tensor(1.5)})
    (request,) = handler.requests
    assert request["path"] == "/events"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["X-Run"] == "abc"
    assert json.loads(request["body"]) == {"epoch": 3, "loss": 0.5, "acc": 0.25, "vec": [1.0, 2.0], "t": 1.5}


def test_a_size_1_array_is_sent_as_a_scalar_as_keras_does(server):
    root, handler = server
    RemoteMonitor(root=root, send_as_json=True).on_epoch_end(
        0, {"loss": 0.0, "val": np.arange(1), "m": np.ones((1, 1)), "t": torch.tensor([2.5])})
    assert json.loads(handler.requests[0]["body"]) == {"epoch": 0, "loss": 0.0, "val": 0, "m": 1.0, "t": 2.5}


def test_custom_form_field(server):
    root, handler = server
    RemoteMonitor(root=root, field="payload").on_epoch_end(0, {"loss": 1.0})
    form = urllib.parse.parse_qs(handler.requests[0]["body"])
    assert json.loads(form["payload"][0]) == {"epoch": 0, "loss": 1.0}


def test_http_error_is_a_warning_and_training_goes_on(server):
    root, handler = server
    handler.status = 500
    x, y = data()
    with pytest.warns(UserWarning, match=r"RemoteMonitor: the server at http://127\.0\.0\.1:\d+ answered HTTP 500"):
        history = make_model().fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[RemoteMonitor(root=root)])
    assert len(history.history["loss"]) == 2 and len(handler.requests) == 2


def test_unreachable_server_is_a_warning_and_training_goes_on(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    x, y = data()
    monitor = RemoteMonitor(root=f"http://127.0.0.1:{port}", timeout=2.0)
    with pytest.warns(UserWarning, match=rf"Could not reach RemoteMonitor root server at http://127\.0\.0\.1:{port} \("):
        history = make_model().fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[monitor])
    assert len(history.history["loss"]) == 2


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"root": "ftp://host"}, r"RemoteMonitor root must be an http:// or https:// URL with a host; received: root='ftp://host'\."),
    ({"root": "localhost:9000"}, r"received: root='localhost:9000'\."),
    ({"root": "http://"}, r"received: root='http://'\."),
    ({"path": "@evil.example/x"}, r"RemoteMonitor path must be a path on the root's host .*received: path='@evil\.example/x'\."),
    ({"headers": [("a", "b")]}, r"RemoteMonitor headers must be a dict or None"),
    ({"field": ""}, r"RemoteMonitor field must be a non-empty string; received: field=''\."),
])
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RemoteMonitor(**kwargs)


def test_defaults_are_keras():
    monitor = RemoteMonitor()
    assert (monitor.root, monitor.path, monitor.field, monitor.headers, monitor.send_as_json) == (
        "http://localhost:9000", "/publish/epoch/end/", "data", None, False)


class _Served:
    """A one-handler HTTP server on 127.0.0.1 that stops by itself (every loop is bounded)."""

    def __init__(self, handler):
        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()
        self.root = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def serve(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    servers = []

    def start(handler):
        servers.append(_Served(handler))
        return servers[-1]

    yield start
    for served in servers:
        served.close()


def _posting_handler(respond):
    class Handler(http.server.BaseHTTPRequestHandler):
        events: list = []

        def do_POST(self):  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers["Content-Length"]))
            type(self).events.append(dict(self.headers))
            respond(self)

        def log_message(self, *args):
            pass

    return Handler


def test_the_timeout_bounds_the_whole_request_not_each_read(serve):
    def drip(handler):  # Headers, then one byte every 0.05 s for at most 60 s.
        handler.send_response(200)
        handler.send_header("Content-Length", "1200")
        handler.end_headers()
        for _ in range(1200):
            try:
                handler.wfile.write(b"x")
                handler.wfile.flush()
            except OSError:  # The client hung up: the drip ends early.
                type(handler).events.append("client hung up")
                return
            threading.Event().wait(0.05)
        type(handler).events.append("all sent")

    handler = _posting_handler(drip)
    served = serve(handler)
    before = threading.active_count()
    with pytest.warns(UserWarning) as caught:
        RemoteMonitor(root=served.root, timeout=0.5).on_epoch_end(0, {"loss": 1.0})
    assert [str(w.message) for w in caught] == [
        f"RemoteMonitor: the server at {served.root} did not complete the post of epoch 0 within "
        "timeout=0.5 seconds (a deadline for the whole request); the post was abandoned."
    ]
    assert threading.active_count() == before  # The helper thread ended with the post.
    for _ in range(600):  # The server notices the hang-up at its next byte.
        if "client hung up" in handler.events:
            break
        threading.Event().wait(0.05)
    assert handler.events[1:] == ["client hung up"]


def test_at_most_64_kib_of_the_answer_is_read(serve):
    outcome = []

    def flood(handler):  # Announces 400 MiB and sends until the client hangs up.
        handler.send_response(200)
        handler.send_header("Content-Length", str(400 * 2**20))
        handler.end_headers()
        chunk = b"y" * 2**16
        for _ in range(400 * 16):
            try:
                handler.wfile.write(chunk)
            except OSError:
                outcome.append("client hung up")
                return
        outcome.append("all sent")

    served = serve(_posting_handler(flood))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RemoteMonitor(root=served.root, timeout=30).on_epoch_end(0, {"loss": 1.0})
    for _ in range(600):  # The server notices the hang-up at its next write.
        if outcome:
            break
        threading.Event().wait(0.05)
    assert outcome == ["client hung up"]


def test_a_redirect_to_another_port_is_not_followed_with_the_headers(serve):
    other = _posting_handler(lambda h: (h.send_response(200), h.send_header("Content-Length", "0"), h.end_headers()))
    elsewhere = serve(other)

    def redirect(handler):
        handler.send_response(302)
        handler.send_header("Location", elsewhere.root + "/stolen")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    first = _posting_handler(redirect)
    served = serve(first)
    monitor = RemoteMonitor(root=served.root, headers={"Authorization": "Bearer secret"})
    with pytest.warns(UserWarning) as caught:
        monitor.on_epoch_end(2, {"loss": 1.0})
    assert [str(w.message) for w in caught] == [
        f"RemoteMonitor: the server at {served.root} answered HTTP 302 to the post of epoch 2, "
        f"redirecting to '{elsewhere.root}/stolen'; redirects are not followed (the headers would "
        "go to another address). Use the final URL as root and path."
    ]
    assert [event["Authorization"] for event in first.events] == ["Bearer secret"]
    assert other.events == []


def test_timeout_must_be_positive():
    with pytest.raises(ValueError, match=r"^RemoteMonitor timeout must be a positive number of seconds; received: timeout=0\.$"):
        RemoteMonitor(timeout=0)
