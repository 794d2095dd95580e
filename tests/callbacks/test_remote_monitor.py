"""RemoteMonitor: POSTs against a real HTTP server on 127.0.0.1, form and JSON, errors as warnings."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import urllib.parse

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
