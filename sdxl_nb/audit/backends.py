"""Which backend re-runs a recorded job: this machine's engine, or the remote server it ran on when reachable."""

from __future__ import annotations

from collections.abc import Sequence

from sdxl_nb import settings
from sdxl_nb.errors import InputError, one_line

NOT_RERUN_REMOTE = "not re-run (remote backend)"


class RemoteUnavailable(Exception):
    """A remote job whose backend cannot be reached from here; the message says which and why."""


def _server(record: dict) -> tuple[str | None, str | None]:
    backend = record.get("backend")
    if not isinstance(backend, dict):
        return None, None
    return backend.get("name"), backend.get("server")


def backend_for(record: dict, local, remotes: Sequence = ()):
    """The backend that re-runs `record`: `local` for a job of this machine; for a remote job, one of `remotes`
    (or the ComfyUI server SDXL_NB_COMFY_URL names) that is the server the job ran on and answers now.
    Raises RemoteUnavailable otherwise: a remote job is never re-run locally, where it would only diverge."""
    name, server = _server(record)
    if name is None:
        return local
    candidates = [*remotes, *([local] if _same_server(local, server) else [])]
    if name == "comfy" and settings.comfy_url() and not any(_same_server(r, server) for r in candidates):
        from sdxl_nb.backends.comfy.backend import ComfyBackend

        try:
            candidates.append(ComfyBackend(settings.comfy_url(), timeout_s=5.0, retries=1))
        except InputError as exc:
            raise RemoteUnavailable(f"{settings.COMFY_URL} is not usable: {one_line(exc)}") from None
    for remote in candidates:
        if _same_server(remote, server):
            try:
                remote.client.system_stats()
            except Exception as exc:  # any failure to answer: the server is not there for us now
                raise RemoteUnavailable(f"the {name} server {server} does not answer ({one_line(exc)})") from None
            vae = (record.get("model") or {}).get("vae") or {}
            return remote.with_files(record["backend"].get("checkpoint"), vae.get("id") or "",
                                     record["backend"].get("refiner_checkpoint"))
    raise RemoteUnavailable(f"it ran on the {name} server {server}; point {settings.COMFY_URL} at that server "
                            "to re-run it there")


def _same_server(backend, server: str | None) -> bool:
    client = getattr(backend, "client", None)
    return server is not None and client is not None and client.server == server
