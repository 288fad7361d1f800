"""Lambda Cloud GPUs: a small API client, and a context manager that always terminates what it launched.

The API key is read from LAMBDA_API_KEY only and never appears in a message. `comfy_on_lambda`
launches an instance, waits until it is active and its ComfyUI port answers (polling, no fixed
sleep), yields a ready ComfyBackend, and terminates the instance on the way out: after success,
an exception, or Ctrl-C.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import tenacity

from sdxl_nb import settings
from sdxl_nb.errors import GenerationError, InputError
from sdxl_nb.record.secrets import mask

API_KEY_ENV = "LAMBDA_API_KEY"
DEFAULT_API = "https://cloud.lambdalabs.com/api/v1"
FAILED_STATES = ("terminated", "terminating", "unhealthy")


class LambdaError(GenerationError):
    """The Lambda Cloud API refused or did not answer (the key is never part of the message)."""


class _Busy(Exception):
    """429 or 5xx: worth another try for a request that is safe to repeat."""


class LambdaCloud:
    """list_instances, launch, wait_until_active, terminate; every call has a timeout and bounded retries."""

    def __init__(self, *, api_url: str | None = None, timeout_s: float = 30.0, retries: int = 3,
                 backoff_s: float = 1.0):
        key = os.environ.get(API_KEY_ENV, "").strip()
        if not key:
            raise InputError(f"{API_KEY_ENV} is not set; create an API key in the Lambda Cloud dashboard and "
                             f"export {API_KEY_ENV}=...")
        self._key = key
        self.api_url = (api_url or settings.lambda_api_url() or DEFAULT_API).rstrip("/")
        self.retries, self.backoff_s = retries, backoff_s
        self._http = httpx.Client(base_url=self.api_url, headers={"Authorization": f"Bearer {key}"},
                                  timeout=httpx.Timeout(timeout_s, connect=5.0))

    def __repr__(self) -> str:
        return f"LambdaCloud(api_url={self.api_url!r})"  # never the key

    def close(self) -> None:
        self._http.close()

    def _mask(self, text: str) -> str:
        return mask(text, given=(self._key,))

    def _call(self, method: str, path: str, *, body: dict | None = None, idempotent: bool = True):
        def once() -> httpx.Response:
            response = self._http.request(method, path, json=body)
            if idempotent and (response.status_code == 429 or response.status_code >= 500):
                raise _Busy(f"HTTP {response.status_code}")
            return response

        def repeatable(exc: BaseException) -> bool:
            if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
                return True  # nothing was sent
            return idempotent and isinstance(exc, (_Busy, httpx.ReadTimeout, httpx.RemoteProtocolError))

        retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(max(1, self.retries)),
                                     wait=tenacity.wait_exponential(multiplier=self.backoff_s, max=10),
                                     retry=tenacity.retry_if_exception(repeatable), reraise=True)
        try:
            response = retrying(once)
        except (httpx.HTTPError, _Busy) as exc:
            raise LambdaError(self._mask(f"Lambda Cloud API {method} {path} did not answer: "
                                         f"{type(exc).__name__} {exc}".strip())) from None
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        if response.status_code >= 400:
            error = payload.get("error") if isinstance(payload, dict) else None
            if isinstance(error, dict):
                detail = " ".join(x for x in (error.get("code"), error.get("message"), error.get("suggestion")) if x)
            else:
                detail = " ".join(response.text.split())[:200]
            raise LambdaError(self._mask(f"Lambda Cloud API {method} {path} failed: HTTP {response.status_code} "
                                         f"{detail}".strip()))
        if not isinstance(payload, dict) or "data" not in payload:
            raise LambdaError(f"Lambda Cloud API {method} {path} answered without data")
        return payload["data"]

    def list_instances(self) -> list[dict]:
        return list(self._call("GET", "/instances"))

    def instance(self, instance_id: str) -> dict | None:
        return next((i for i in self.list_instances() if i.get("id") == instance_id), None)

    def launch(self, instance_type: str, region: str, ssh_key_names: list[str], *, name: str | None = None,
               quantity: int = 1, **options) -> list[str]:
        """Launch instances; returns their ids. `options` go into the body as given (e.g. file_system_names)."""
        body = {"instance_type_name": instance_type, "region_name": region, "ssh_key_names": list(ssh_key_names),
                "quantity": quantity, **options}
        if name:
            body["name"] = name
        data = self._call("POST", "/instance-operations/launch", body=body, idempotent=False)
        ids = list(data.get("instance_ids") or [])
        if not ids:
            raise LambdaError("Lambda Cloud launched nothing (no instance ids in the answer)")
        return ids

    def wait_until_active(self, instance_id: str, *, timeout_s: float = 1200.0, poll_s: float = 10.0,
                          on_status: Callable[[str], None] | None = None) -> dict:
        """Poll until the instance is active with an IP; an instance that dies or a timeout is a LambdaError."""
        deadline, last = time.monotonic() + timeout_s, None
        while True:
            instance = self.instance(instance_id) or {}
            status = instance.get("status", "unknown")
            if status != last and on_status:
                on_status(status)
            last = status
            if status == "active" and instance.get("ip"):
                return instance
            if status in FAILED_STATES:
                raise LambdaError(f"Lambda instance {instance_id} is {status} instead of booting")
            if time.monotonic() + poll_s > deadline:
                raise LambdaError(f"Lambda instance {instance_id} was not active within {timeout_s:g} s "
                                  f"(last status: {status})")
            time.sleep(poll_s)

    def terminate(self, instance_ids: list[str]) -> list[dict]:
        data = self._call("POST", "/instance-operations/terminate", body={"instance_ids": list(instance_ids)})
        return list(data.get("terminated_instances") or [])


def wait_for_http(url: str, *, timeout_s: float = 900.0, poll_s: float = 5.0, path: str = "/system_stats") -> None:
    """Poll until the server answers `path` with 200 (ComfyUI is up, not just the machine)."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=httpx.Timeout(min(10.0, poll_s * 2), connect=min(5.0, poll_s * 2))) as client:
        while True:
            try:
                if client.get(url.rstrip("/") + path).status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not up yet
            if time.monotonic() + poll_s > deadline:
                raise LambdaError(f"ComfyUI at {mask(url)} did not answer within {timeout_s:g} s")
            time.sleep(poll_s)


@contextmanager
def comfy_on_lambda(instance_type: str, region: str, ssh_key_names: list[str], *,
                    comfy_url: str | Callable[[dict], str] = "http://{ip}:8188", cloud: LambdaCloud | None = None,
                    name: str | None = None, boot_timeout_s: float = 1200.0, ready_timeout_s: float = 900.0,
                    poll_s: float = 10.0, launch_options: dict | None = None,
                    on_stage: Callable[[str], None] | None = None, **backend_options) -> Iterator:
    """Launch a GPU instance, wait for its ComfyUI, yield a ComfyBackend; ALWAYS terminate it afterwards.

    `comfy_url`: where ComfyUI answers, from the instance ("{ip}" is filled in, or a function of
    the instance record), e.g. "http://127.0.0.1:8188" through an SSH tunnel. The instance must
    start ComfyUI itself (an image, a file system or `launch_options` such as user_data).
    """
    from sdxl_nb.backends.comfy.backend import ComfyBackend

    stage = on_stage or (lambda _text: None)
    cloud = cloud or LambdaCloud()
    name = name or f"sdxl-nb-{uuid.uuid4().hex[:8]}"
    ids: list[str] = []
    try:
        stage(f"launching {instance_type} in {region} as {name}")
        try:
            ids = cloud.launch(instance_type, region, ssh_key_names, name=name, **(launch_options or {}))
        except BaseException:
            ids = _launched_anyway(cloud, name)  # the answer may be lost after the instance was created
            raise
        instance = cloud.wait_until_active(ids[0], timeout_s=boot_timeout_s, poll_s=poll_s,
                                           on_status=lambda status: stage(f"instance {ids[0]}: {status}"))
        url = comfy_url(instance) if callable(comfy_url) else comfy_url.format(ip=instance["ip"])
        stage(f"waiting for ComfyUI at {mask(url)}")
        wait_for_http(url, timeout_s=ready_timeout_s, poll_s=min(poll_s, 5.0))
        stage("ComfyUI is ready")
        yield ComfyBackend(url, **backend_options)
    finally:
        if ids:
            _terminate(cloud, ids, stage)


def _launched_anyway(cloud: LambdaCloud, name: str) -> list[str]:
    try:
        return [i["id"] for i in cloud.list_instances() if i.get("name") == name and i.get("status") not in
                ("terminated", "terminating")]
    except (LambdaError, InputError):
        return []


def _terminate(cloud: LambdaCloud, ids: list[str], stage: Callable[[str], None]) -> None:
    stage(f"terminating {', '.join(ids)}")
    try:
        try:
            cloud.terminate(ids)
        except KeyboardInterrupt:
            cloud.terminate(ids)  # a second Ctrl-C during clean-up must not leave a billed machine running
            raise
    except LambdaError as exc:
        raise LambdaError(f"could not terminate Lambda instance(s) {', '.join(ids)} ({exc}); terminate them in the "
                          "Lambda Cloud dashboard: they are billed until then") from exc
    stage(f"terminated {', '.join(ids)}")
