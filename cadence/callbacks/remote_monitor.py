"""RemoteMonitor: POST each epoch's logs to an HTTP server (standard library only)."""

from __future__ import annotations

import http.client
import json
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


class RemoteMonitor(Callback):
    """Send each epoch's logs to a server with an HTTP POST, as Keras's ``RemoteMonitor``.

    At every epoch's end it posts ``{"epoch": epoch, **logs}`` (epoch counted from 0) to
    ``root + path``: as a form whose field ``field`` holds the JSON text, or, with
    ``send_as_json=True``, as a JSON body (``Content-Type: application/json``). A server that
    cannot be reached or answers with an HTTP error gives a warning; training goes on.

    Args:
        root: The server's root URL, ``http://`` or ``https://``.
        path: The path, relative to ``root``, that events are posted to.
        field: The form field holding the JSON text (form posts only).
        headers: Extra HTTP headers, a dict of strings.
        send_as_json: Post the JSON as the request body instead of a form.
        timeout: Seconds to wait for the server before giving up on an epoch's post.

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
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as error:
            error.close()
            warnings.warn(
                f"RemoteMonitor: the server at {self.root} answered HTTP {error.code} "
                f"({error.reason}) to the post of epoch {epoch}.",
                stacklevel=2,
            )
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            warnings.warn(
                f"Could not reach RemoteMonitor root server at {self.root} ({error}).",
                stacklevel=2,
            )
