"""RemoteMonitor: POST each epoch's logs to an HTTP server (standard library only)."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
import warnings
from typing import Any

import numpy as np
import torch

from cadence.callbacks.callback import Callback


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.item() if value.size == 1 else value.tolist()  # Size 1: a scalar, as Keras.
    if isinstance(value, np.generic):
        return value.item()
    return value


#: At most this many bytes of a response are read (the body is not used); the rest is dropped.
MAX_RESPONSE_BYTES = 64 * 1024


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Follow no redirect: the user's headers (``Authorization``) never go to another address."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102, ANN001
        return None


def _recording(base: type, sockets: list) -> type:
    """Return a subclass of an ``http.client`` connection that keeps the sockets it opens."""

    class Recording(base):
        def connect(self) -> None:
            super().connect()
            sockets.append(self.sock)

    return Recording


class _RecordingHTTP(urllib.request.HTTPHandler):
    """Keep the sockets it opens, so the caller can shut them down at the deadline."""

    def __init__(self, sockets: list) -> None:
        super().__init__()
        self.connection = _recording(http.client.HTTPConnection, sockets)

    def http_open(self, req):  # noqa: D102, ANN001
        return self.do_open(self.connection, req)


class _RecordingHTTPS(urllib.request.HTTPSHandler):
    """The HTTPS twin of :class:`_RecordingHTTP`."""

    def __init__(self, sockets: list) -> None:
        super().__init__()
        self.connection = _recording(http.client.HTTPSConnection, sockets)

    def https_open(self, req):  # noqa: D102, ANN001
        return self.do_open(self.connection, req, context=self._context)


def _post(opener: Any, request: Any, timeout: float, outcome: dict) -> None:
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(MAX_RESPONSE_BYTES)
    except BaseException as error:  # noqa: BLE001 - reported by the caller's thread
        outcome["error"] = error


class RemoteMonitor(Callback):
    """Send each epoch's logs to a server with an HTTP POST, as Keras's ``RemoteMonitor``.

    At every epoch's end it posts ``{"epoch": epoch, **logs}`` (epoch counted from 0) to
    ``root + path``: as a form whose field ``field`` holds the JSON text, or, with
    ``send_as_json=True``, as a JSON body (``Content-Type: application/json``). A server that
    cannot be reached or answers with an HTTP error gives a warning; training goes on.

    ``timeout`` bounds the whole request (connecting, sending, the server's answer), not each
    socket read: a server that answers a byte at a time is cut off at the deadline, with a
    warning. At most ``MAX_RESPONSE_BYTES`` (64 KiB) of the answer are read. Unlike Keras
    (``requests``), redirects are not followed, so the ``headers`` (often an
    ``Authorization``) never go to another host or port: a 3xx answer gives a warning naming
    where it pointed. HTTP proxies of the environment (``http_proxy``, ...) are used.

    Args:
        root: The server's root URL, ``http://`` or ``https://``.
        path: The path, relative to ``root``, that events are posted to.
        field: The form field holding the JSON text (form posts only).
        headers: Extra HTTP headers, a dict of strings.
        send_as_json: Post the JSON as the request body instead of a form.
        timeout: Seconds the whole post of an epoch may take before it is abandoned.

    Raises:
        ValueError: If ``root`` is not an http(s) URL with a host, or ``path`` would change the
            host the requests go to.
    """

    #: Posts on rank 0 only.
    writes_files = True
    #: Never sets ``model.stop_training``.
    may_stop_training = False

    def __init__(
        self,
        root: str = "http://localhost:9000",
        path: str = "/publish/epoch/end/",
        field: str = "data",
        headers: dict[str, str] | None = None,
        send_as_json: bool = False,
        timeout: float = 10.0,
    ) -> None:
        super().__init__()
        parsed = urllib.parse.urlparse(root) if isinstance(root, str) else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(
                "RemoteMonitor root must be an http:// or https:// URL with a host; "
                f"received: root={root!r}."
            )
        if not isinstance(path, str) or urllib.parse.urlparse(root + path).netloc != parsed.netloc:
            raise ValueError(
                "RemoteMonitor path must be a path on the root's host (no '@', scheme or host); "
                f"received: path={path!r}."
            )
        if headers is not None and not isinstance(headers, dict):
            raise ValueError(f"RemoteMonitor headers must be a dict or None; received: headers={headers!r}.")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ValueError(
                f"RemoteMonitor timeout must be a positive number of seconds; received: timeout={timeout!r}."
            )
        if not isinstance(field, str) or not field:
            raise ValueError(f"RemoteMonitor field must be a non-empty string; received: field={field!r}.")
        self.root = root
        self.path = path
        self.field = field
        self.headers = headers
        self.send_as_json = bool(send_as_json)
        self.timeout = timeout

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Post the epoch's logs; warn (and go on) if the server cannot be reached."""
        send: dict[str, Any] = {"epoch": epoch}
        send.update((key, _jsonable(value)) for key, value in (logs or {}).items())
        text = json.dumps(send)
        if self.send_as_json:
            body = text.encode("utf-8")
            content_type = "application/json"
        else:
            body = urllib.parse.urlencode({self.field: text}).encode("ascii")
            content_type = "application/x-www-form-urlencoded"
        headers = {"Content-Type": content_type, **(self.headers or {})}
        request = urllib.request.Request(self.root + self.path, data=body, headers=headers, method="POST")
        error = self._send(request)
        if error is None:
            return
        if isinstance(error, TimeoutError) and str(error) == "deadline":
            warnings.warn(
                f"RemoteMonitor: the server at {self.root} did not complete the post of epoch "
                f"{epoch} within timeout={self.timeout} seconds (a deadline for the whole request); "
                "the post was abandoned.",
                stacklevel=2,
            )
        elif isinstance(error, urllib.error.HTTPError) and 300 <= error.code < 400:
            location = error.headers.get("Location") if error.headers is not None else None
            error.close()
            warnings.warn(
                f"RemoteMonitor: the server at {self.root} answered HTTP {error.code} to the post "
                f"of epoch {epoch}, redirecting to {location!r}; redirects are not followed (the "
                "headers would go to another address). Use the final URL as root and path.",
                stacklevel=2,
            )
        elif isinstance(error, urllib.error.HTTPError):
            error.close()
            warnings.warn(
                f"RemoteMonitor: the server at {self.root} answered HTTP {error.code} "
                f"({error.reason}) to the post of epoch {epoch}.",
                stacklevel=2,
            )
        elif isinstance(error, urllib.error.URLError | http.client.HTTPException | OSError):
            warnings.warn(
                f"Could not reach RemoteMonitor root server at {self.root} ({error}).",
                stacklevel=2,
            )
        else:
            raise error

    def _send(self, request: Any) -> BaseException | None:
        """Post ``request`` in a helper thread; return its error, or TimeoutError at the deadline.

        At the deadline the connection's socket is shut down, which ends the helper thread's
        blocked read at once, so no thread outlives the post for long.
        """
        sockets: list = []
        opener = urllib.request.build_opener(
            _NoRedirect, _RecordingHTTP(sockets), _RecordingHTTPS(sockets)
        )
        outcome: dict[str, BaseException] = {}
        worker = threading.Thread(
            target=_post, args=(opener, request, self.timeout, outcome),
            name="cadence-RemoteMonitor", daemon=True,
        )
        worker.start()
        worker.join(self.timeout)
        late = worker.is_alive()
        if late:
            for sock in list(sockets):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            # Shut down, a socket's read ends at once; a connect() under way, at its own timeout.
            worker.join(max(self.timeout, 10.0))
        for sock in sockets:
            sock.close()
        return TimeoutError("deadline") if late else outcome.get("error")
