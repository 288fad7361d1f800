"""A ComfyUI server over HTTP (httpx, retried with tenacity) and its websocket (websocket-client).

Follows a prompt on /ws?clientId=..., falls back to polling /history/{id} when the websocket
cannot be opened or drops, stops with /interrupt, downloads outputs with /view. Credentials in the
URL (user:password@) are sent as basic auth and never appear in a message.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import tenacity

from sdxl_nb.errors import GenerationError
from sdxl_nb.record.secrets import mask, without_credentials

INTERRUPT_GRACE_S = 30.0


class ComfyError(GenerationError):
    """The ComfyUI server could not run the prompt (a run-time failure: exit 1, recorded as failed)."""


class ComfyUnreachable(ComfyError):
    """No answer from the server (after retries)."""


class ComfyRejected(ComfyError):
    """POST /prompt answered with an error and node_errors: the graph does not fit this server."""


class ComfyTimeout(ComfyError):
    """The prompt did not finish within the job timeout."""


# ComfyUI's folder_paths.folder_names_and_paths: the key a loader lists its files from -> the folders under
# ComfyUI/ those files live in (a file in a sub-folder is listed as "sub/name.safetensors").
SERVER_FOLDERS = {"checkpoints": ("models/checkpoints",), "loras": ("models/loras",), "vae": ("models/vae",),
                  "upscale_models": ("models/upscale_models",), "embeddings": ("models/embeddings",),
                  "controlnet": ("models/controlnet", "models/t2i_adapter")}


def server_folder(key: str) -> str:
    """Where a ComfyUI server keeps files of that folder_paths key, as a user finds it: "models/controlnet"."""
    return " or ".join(SERVER_FOLDERS[key])


def combo_options(spec: object) -> list[str] | None:
    """The names a combo input of /object_info lists, in either form ComfyUI answers: the older
    `[[name, ...], {...}]` (a V1 node's INPUT_TYPES tuple) or the newer `["COMBO", {"options": [name, ...]}]`
    (comfy_api's `add_to_dict_v1(i, d)`: `(i.get_io_type(), i.as_dict())`, where `Combo.Input.as_dict()` holds
    "options"; server.py's node_info serves INPUT_TYPES as it is). None when the spec lists no names (a remote
    combo, another input type): the server is then not asked about that file."""
    if not isinstance(spec, (list, tuple)) or not spec:
        return None
    head = spec[0]
    if isinstance(head, (list, tuple)):
        return [str(name) for name in head]
    if head == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict) and isinstance(spec[1].get("options"),
                                                                                     (list, tuple)):
        return [str(name) for name in spec[1]["options"]]
    return None


def node_errors_message(body: dict) -> str:
    """One line from ComfyUI's {"error": {...}, "node_errors": {node: {"class_type", "errors": [...]}}}."""
    error = body.get("error") or {}
    head = error.get("message") if isinstance(error, dict) else str(error)
    parts = []
    for node_id, node in sorted((body.get("node_errors") or {}).items()):
        for item in node.get("errors", []) or [{}]:
            detail = ": ".join(x for x in (item.get("message"), item.get("details")) if x)
            parts.append(f"node {node_id} ({node.get('class_type', '?')}): {detail or 'invalid'}")
    text = "; ".join([head or "invalid prompt", *parts]) if parts else (head or "invalid prompt")
    return " ".join(text.split())


class _Transient(Exception):
    """A 5xx answer to a request that is safe to repeat."""


def _repeatable(idempotent: bool):
    def check(exc: BaseException) -> bool:
        # A refused connection means nothing was sent: safe to repeat even for POST /prompt.
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
            return True
        return idempotent and isinstance(exc, (_Transient, httpx.ReadTimeout, httpx.RemoteProtocolError,
                                               httpx.ReadError))
    return check


class ComfyClient:
    """One client id per instance; every call has a timeout; transient failures are retried."""

    def __init__(self, url: str, *, timeout_s: float = 30.0, retries: int = 3, backoff_s: float = 0.5,
                 poll_interval_s: float = 1.0, use_websocket: bool = True):
        parts = urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"ComfyUI URL {without_credentials(url)!r} not understood; accepted: "
                             "http://host:port or https://host/path")
        self.server = without_credentials(url.rstrip("/"))
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        self._secrets = tuple(x for x in (parts.username, parts.password, user, password) if x)
        auth = httpx.BasicAuth(user, password) if parts.username else None
        # The websocket handshake carries the same basic auth as the HTTP calls.
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._auth_header = f"Basic {token}" if parts.username else None
        self.client_id = uuid.uuid4().hex
        self.retries, self.backoff_s, self.poll_interval_s = retries, backoff_s, poll_interval_s
        self.use_websocket = use_websocket
        self.timeout_s = timeout_s
        self._http = httpx.Client(base_url=self.server, auth=auth, timeout=httpx.Timeout(timeout_s, connect=5.0))
        ws_scheme = "wss" if parts.scheme == "https" else "ws"
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        self._ws_url = urlunsplit((ws_scheme, netloc, parts.path.rstrip("/") + "/ws", f"clientId={self.client_id}", ""))

    def close(self) -> None:
        self._http.close()

    # ---- HTTP ----
    def _request(self, method: str, path: str, *, idempotent: bool = True, **kwargs) -> httpx.Response:
        def once() -> httpx.Response:
            response = self._http.request(method, path, **kwargs)
            if response.status_code in (502, 503, 504) and idempotent:
                raise _Transient(f"HTTP {response.status_code}")
            return response

        retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(max(1, self.retries)),
                                     wait=tenacity.wait_exponential(multiplier=self.backoff_s, max=5),
                                     retry=tenacity.retry_if_exception(_repeatable(idempotent)), reraise=True)
        try:
            return retrying(once)
        except (httpx.HTTPError, _Transient) as exc:
            raise ComfyUnreachable(self._mask(f"ComfyUI server {self.server} did not answer {method} {path}: "
                                              f"{type(exc).__name__} {exc}".strip())) from None

    def _json(self, response: httpx.Response, what: str):
        if response.status_code >= 400:
            raise ComfyError(self._mask(f"ComfyUI {what} failed: HTTP {response.status_code} "
                                        f"{' '.join(response.text.split())[:200]}"))
        try:
            return response.json()
        except ValueError:
            raise ComfyError(f"ComfyUI {what} answered with something that is not JSON") from None

    def _mask(self, text: str) -> str:
        return mask(text, given=self._secrets)

    def system_stats(self) -> dict:
        return self._json(self._request("GET", "/system_stats"), "GET /system_stats")

    def object_info(self, node_class: str) -> dict:
        info = self._json(self._request("GET", f"/object_info/{node_class}"), f"GET /object_info/{node_class}")
        return info.get(node_class, {}) if isinstance(info, dict) else {}

    def choices(self, node_class: str, input_name: str) -> list[str] | None:
        """The values a node's list input accepts on this server (e.g. checkpoint files), or None when the server
        does not list them."""
        inputs = self.object_info(node_class).get("input")
        inputs = inputs if isinstance(inputs, dict) else {}
        for group in ("required", "optional"):
            specs = inputs.get(group)
            if isinstance(specs, dict) and input_name in specs:
                return combo_options(specs[input_name])
        return None

    def embeddings(self) -> list[str] | None:
        """The server's embedding names (GET /embeddings: file names without extension), or None when it does not
        list them (an older or trimmed server answering 404)."""
        response = self._request("GET", "/embeddings")
        if response.status_code == 404:
            return None
        names = self._json(response, "GET /embeddings")
        return [str(name) for name in names] if isinstance(names, list) else None

    def upload_image(self, data: bytes, name: str) -> str:
        response = self._request("POST", "/upload/image", files={"image": (name, data, "application/octet-stream")},
                                 data={"overwrite": "true", "type": "input"})
        body = self._json(response, "POST /upload/image")
        stored = "/".join(x for x in (body.get("subfolder"), body.get("name")) if x)
        if stored != name:
            raise ComfyError(f"ComfyUI stored the uploaded image {name} as {stored}")
        return stored

    def queue_prompt(self, graph: dict) -> str:
        response = self._request("POST", "/prompt", idempotent=False,
                                 json={"prompt": graph, "client_id": self.client_id})
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        if response.status_code >= 400 or body.get("node_errors"):
            if isinstance(body, dict) and ("node_errors" in body or "error" in body):
                raise ComfyRejected(self._mask("ComfyUI rejected the workflow: " + node_errors_message(body)))
            self._json(response, "POST /prompt")
        if not isinstance(body.get("prompt_id"), str) or not body["prompt_id"]:
            raise ComfyError("ComfyUI POST /prompt answered without a prompt_id")
        return body["prompt_id"]

    def history(self, prompt_id: str) -> dict | None:
        body = self._json(self._request("GET", f"/history/{prompt_id}"), "GET /history")
        entry = body.get(prompt_id) if isinstance(body, dict) else None
        if entry is not None and not isinstance(entry, dict):
            raise ComfyError(f"ComfyUI GET /history answered something that is not a history entry for prompt "
                             f"{prompt_id}")
        return entry

    def view(self, image: dict) -> bytes:
        params = {"filename": image["filename"], "subfolder": image.get("subfolder", ""),
                  "type": image.get("type", "output")}
        response = self._request("GET", "/view", params=params)
        if response.status_code >= 400:
            raise ComfyError(f"ComfyUI GET /view {image['filename']} failed: HTTP {response.status_code}")
        return response.content

    def interrupt(self, prompt_id: str | None = None) -> None:
        """Stop the running prompt and drop it from the queue if it has not started."""
        if prompt_id:
            self._request("POST", "/queue", json={"delete": [prompt_id]})
        self._request("POST", "/interrupt", json={"prompt_id": prompt_id} if prompt_id else None)

    # ---- following a prompt ----
    def connect(self):
        """The websocket for this client id (open it before queueing), or None when it cannot be opened."""
        if not self.use_websocket:
            return None
        import websocket

        header = [f"Authorization: {self._auth_header}"] if self._auth_header else None
        try:
            return websocket.create_connection(self._ws_url, timeout=min(self.timeout_s, 10.0), header=header)
        except (OSError, websocket.WebSocketException):
            return None

    def follow(self, prompt_id: str, ws, *, on_progress: Callable[[int, int, str | None], None], should_stop: Callable[[], bool],
               timeout_s: float, events: list[str]) -> tuple[str, dict]:
        """Wait for a prompt: ("ok" | "interrupted", its history entry). Raises ComfyError on failure."""
        deadline = time.monotonic() + timeout_s
        interrupted_at = None
        last_check = time.monotonic()
        while True:
            now = time.monotonic()
            if now > deadline:
                self._give_up(prompt_id)
                raise ComfyTimeout(f"ComfyUI did not finish prompt {prompt_id} within {timeout_s:g} s; it was "
                                   "interrupted on the server")
            if interrupted_at is None and should_stop():
                self.interrupt(prompt_id)
                interrupted_at = now
                events.append(f"stop asked: POST /interrupt for prompt {prompt_id}")
            elif interrupted_at is not None and now - interrupted_at > INTERRUPT_GRACE_S:
                events.append(f"the server did not confirm the interrupt of prompt {prompt_id} "
                              f"within {INTERRUPT_GRACE_S:g} s")
                return "interrupted", {}
            if ws is not None:
                try:
                    finished = self._read_message(ws, prompt_id, on_progress)
                except _SocketLost as exc:
                    events.append(f"websocket lost ({exc}); following prompt {prompt_id} by polling /history")
                    ws = None
                    continue
                if finished is None and time.monotonic() - last_check < max(2.0, self.poll_interval_s * 4):
                    continue
            else:
                time.sleep(self.poll_interval_s)
            # Polling: always when there is no websocket, and now and then as a safety net when there is.
            last_check = time.monotonic()
            entry = self.history(prompt_id)
            outcome = _history_outcome(entry) if entry else None
            if outcome is None and interrupted_at is not None and time.monotonic() - interrupted_at > 5 * max(
                    1.0, self.poll_interval_s) and not self._in_queue(prompt_id):
                return "interrupted", {}  # dropped from the queue before it started: no history entry
            if outcome is None:
                continue
            status, message = outcome
            if status == "error":
                raise ComfyError(self._mask(f"ComfyUI failed to run prompt {prompt_id}: {message}"))
            return status, entry

    def _in_queue(self, prompt_id: str) -> bool:
        queue = self._json(self._request("GET", "/queue"), "GET /queue")
        items = (queue.get("queue_running") or []) + (queue.get("queue_pending") or [])
        return any(len(item) > 1 and item[1] == prompt_id for item in items)

    def _give_up(self, prompt_id: str) -> None:
        try:
            self.interrupt(prompt_id)
        except ComfyError:
            pass  # the timeout is the error worth reporting

    def _read_message(self, ws, prompt_id: str, on_progress) -> str | None:
        """Read one websocket message; return "finished" when the prompt is done (any outcome), else None."""
        import websocket

        ws.settimeout(min(self.poll_interval_s, 0.5))
        try:
            raw = ws.recv()
        except websocket.WebSocketTimeoutException:
            return None
        except (OSError, websocket.WebSocketException) as exc:
            raise _SocketLost(type(exc).__name__) from None
        if not raw:
            raise _SocketLost("closed by the server")
        if isinstance(raw, bytes):
            return None  # binary frames are previews
        try:
            message = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(message, dict) or not isinstance(message.get("data") or {}, dict):
            return None  # not a ComfyUI message
        kind, data = message.get("type"), message.get("data") or {}
        if data.get("prompt_id") not in (None, prompt_id):
            return None  # someone else's prompt on a shared server
        if kind == "progress" and data.get("prompt_id", prompt_id) == prompt_id:
            value, maximum = data.get("value", 0), data.get("max", 0)
            if all(isinstance(n, int) and not isinstance(n, bool) for n in (value, maximum)):
                node = data.get("node")  # which sampler of the graph: each counts from 1 to its own steps
                on_progress(value, maximum, node if isinstance(node, str) else None)
        elif kind == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
            return "finished"
        elif kind in ("execution_success", "execution_error", "execution_interrupted") and \
                data.get("prompt_id") == prompt_id:
            return "finished"
        return None


class _SocketLost(Exception):
    pass


def _history_outcome(entry: dict) -> tuple[str, str] | None:
    """("ok" | "interrupted" | "error", message) from a /history entry; None while it is not finished."""
    status = entry.get("status") if isinstance(entry.get("status"), dict) else {}
    messages = status.get("messages") if isinstance(status.get("messages"), list) else []
    kinds = {m[0]: (m[1] if len(m) > 1 else {}) for m in messages if isinstance(m, list) and m and isinstance(m[0], str)}
    if "execution_interrupted" in kinds:
        return "interrupted", ""
    if "execution_error" in kinds or status.get("status_str") == "error":
        data = kinds.get("execution_error") if isinstance(kinds.get("execution_error"), dict) else {}
        where = f"node {data.get('node_id', '?')} ({data.get('node_type', '?')}): " if data else ""
        text = data.get("exception_message") or "execution error"
        return "error", where + " ".join(str(text).split())
    if status.get("completed") or status.get("status_str") == "success":
        return "ok", ""
    if entry.get("outputs") and not status:
        return "ok", ""  # older servers: outputs without a status block
    return None
