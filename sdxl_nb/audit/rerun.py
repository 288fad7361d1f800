"""Re-run audit: regenerate selected jobs from their records and compare with the saved images."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from sdxl_nb.analysis.sources import LoggedRecord
from sdxl_nb.audit.backends import NOT_RERUN_REMOTE, RemoteUnavailable, backend_for
from sdxl_nb.audit.compare import CLOSE_MAX_ABS_DIFF, CLOSE_MIN_PSNR_DB, SKIPPED, compare_images
from sdxl_nb.audit.drift import MAY_DIFFER, describe, differences, engine_environment
from sdxl_nb.audit.integrity import folder_file, resolve_path
from sdxl_nb.audit.replay_request import REPLAYABLE_MODES, ReplayError
from sdxl_nb.config.presets import Presets
from sdxl_nb.config.trusted_folders import OUTSIDE_INPUTS, OUTSIDE_MODEL_FOLDERS, NotTrusted
from sdxl_nb.errors import InputError, one_line
from sdxl_nb.record.store import sha256_file

RERUN_COLUMNS = ["job_id", "log", "line", "mode", "image_index", "seed", "image_path", "verdict", "max_abs_diff",
                 "psnr_db", "drift", "note"]
ANIMATE_UNAVAILABLE = "animate re-run not available"
# Jobs never re-run because a file they name lies outside where it may be read from (the note names the file).
NOT_RERUN_UNTRUSTED = (OUTSIDE_MODEL_FOLDERS, OUTSIDE_INPUTS)


def saved_entries(record: dict) -> list[dict]:
    """The saved images of a job (an animation's frames), as dicts with path, sha256, seed, index."""
    entries = record.get("frames") if record.get("mode") == "animate" else record.get("images")
    if not isinstance(entries, list):
        return []
    entries = [{"path": e} if isinstance(e, str) else e for e in entries]
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("path"), str)
            and _plain_index(e.get("index", 0))]


def _plain_index(value: object) -> bool:
    # An image's index and seed key the comparison: a hostile record's list or mapping there is no image.
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def rerunnable(logged: LoggedRecord) -> bool:
    return bool(saved_entries(logged.record))


def select_for_rerun(records: list[LoggedRecord], count: int | str | None = None,
                     job_ids: tuple[str, ...] | list[str] = ()) -> list[LoggedRecord]:
    """Jobs to re-run: those named by id (or a unique id prefix), else the last `count` jobs that
    saved images ("all": every one); failed jobs saved nothing and are never selected."""
    candidates = [logged for logged in records if rerunnable(logged)]
    if job_ids:
        chosen = []
        for wanted in job_ids:
            matches = [c for c in candidates if str(c.record.get("job_id", "")).startswith(wanted)]
            if len(matches) != 1:
                problem = "matches no job with saved images" if not matches else f"matches {len(matches)} jobs"
                raise InputError(f"job id {wanted!r} {problem}; give a full job id from the log")
            chosen.append(matches[0])
        return chosen
    if count is None:
        return []
    if count == "all":
        return candidates
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InputError(f"re-run count {count!r} is not valid; accepted: a whole number of jobs >= 1, or 'all'")
    return candidates[-count:]


def _as_images(result, entries: list[dict]) -> dict[int, object]:
    """An animation re-run's output by frame index: PIL images in frame order, (index, ..., image)
    tuples, or a dict {index: image}."""
    if isinstance(result, dict):
        return dict(result)
    images = {}
    for position, item in enumerate(result):
        if isinstance(item, tuple):
            images[int(item[0])] = item[-1]
        else:
            index = entries[position].get("index", position) if position < len(entries) else position
            images[int(index)] = item
    return images


def made_elsewhere(record: dict, engine) -> str | None:
    """Why `engine` cannot re-run a job made on another kind of backend (a ComfyUI server and this machine's
    engine are different implementations: a re-run could only diverge); None when it can."""
    made = record.get("backend") if isinstance(record.get("backend"), dict) else {}
    model = record.get("model") if isinstance(record.get("model"), dict) else {}
    here = engine.backend_record(model.get("id")) or {}
    if (made.get("name"), made.get("checkpoint")) == (here.get("name"), here.get("checkpoint")):
        return None
    if not made:
        where = "this machine's engine"
    elif made.get("name") == "comfy":
        where = f"the ComfyUI server {made.get('server')} (checkpoint {made.get('checkpoint')})"
    else:
        where = f"the {made.get('name')} backend"
    return f"made on {where}; re-run it on that backend"


def _regenerate(logged: LoggedRecord, engine, presets: Presets | None) -> tuple[dict[int, object], list[str]]:
    elsewhere = made_elsewhere(logged.record, engine)
    if elsewhere:
        raise ReplayError(elsewhere)
    mode = logged.record.get("mode")
    if not engine.capabilities.rerun:
        raise ReplayError(f"the {engine.name} backend cannot re-run jobs")
    if mode in REPLAYABLE_MODES:
        from sdxl_nb.backends.local.replay import replay

        result = replay(logged.record, logged.folder, engine, presets)
        return result.images, result.notes
    if mode == "upscale":
        from sdxl_nb.jobs.upscale import rerun_upscale

        return rerun_upscale(logged.record, logged.folder, engine), []
    if mode == "animate":
        from sdxl_nb.audit.replay_request import check_recorded_checkpoint

        check_recorded_checkpoint(logged.record.get("model"))
        try:
            from sdxl_nb.jobs.animate import rerun_frames
        except ImportError:  # the animate module (or its re-run) is not part of this installation
            raise ReplayError(ANIMATE_UNAVAILABLE) from None
        return _as_images(rerun_frames(logged.record, engine=engine, folder=logged.folder), saved_entries(logged.record)), []
    raise ReplayError(f"mode {mode!r} cannot be re-run; accepted: {', '.join(REPLAYABLE_MODES)}, animate, upscale")


def _environment_of(backend, engine, current: dict) -> dict:
    """The environment a job re-runs in: this engine's, or the remote server's own (what it answers now)."""
    if backend is engine:
        return current
    try:
        return engine_environment(backend)
    except Exception:  # noqa: BLE001 - a server that stops answering here fails its re-run below, with the reason
        return {}


def rerun_jobs(records: list[LoggedRecord], engine=None, *, presets: Presets | None = None,
               on_job: Callable[[LoggedRecord, str], None] | None = None, min_psnr_db: float = CLOSE_MIN_PSNR_DB,
               max_abs_diff: int = CLOSE_MAX_ABS_DIFF, remotes=(),
               on_skip: Callable[[LoggedRecord, str], None] | None = None) -> pd.DataFrame:
    """Regenerate each job and compare image by image; the table has one row per saved image.

    Verdicts: bit-exact, close (PSNR >= min_psnr_db and no pixel off by more than max_abs_diff;
    max_abs_diff and psnr_db are given), diverged, or skipped (the note says why). A job that ran on a
    remote backend (ComfyUI) re-runs there when that server is reachable (one of `remotes`, or
    SDXL_NB_COMFY_URL's), else it is "not re-run (remote backend)" with the reason: never re-run here. `drift` lists
    environment differences found before running ("re-run may not be bit-exact"): for a ComfyUI job, between what
    its record holds of the server (ComfyUI, torch, Python, GPU) and what that server answers now.
    `on_job(record, drift)` is called before each job starts; `on_skip(record, why)` for each job not re-run
    because the server it was made on cannot be reached.
    """
    if engine is None:
        from sdxl_nb.backends.local import get_engine

        engine = get_engine()
    current = engine_environment(engine)
    rows = []
    for logged in records:
        record = logged.record
        entries = saved_entries(record)
        base = (record.get("job_id"), str(logged.log), logged.line, record.get("mode"))
        try:
            backend = backend_for(record, engine, remotes)
        except RemoteUnavailable as exc:  # never re-run here: nothing to compare, no drift to measure
            if on_skip:
                on_skip(logged, str(exc))
            rows += [(*base, e.get("index"), e.get("seed"), e.get("path"), NOT_RERUN_REMOTE, None, None, "",
                      str(exc)) for e in entries]
            continue
        changes = differences(record, _environment_of(backend, engine, current))
        drift = f"{describe(changes)}: {MAY_DIFFER}" if changes else ""
        if on_job:
            on_job(logged, drift)
        try:
            images, notes = _regenerate(logged, backend, presets)
        except NotTrusted as exc:  # nothing of that file was opened; the other jobs still re-run
            rows += [(*base, e.get("index"), e.get("seed"), e.get("path"), exc.verdict, None, None, drift, str(exc))
                     for e in entries]
            continue
        except ReplayError as exc:
            rows += [(*base, e.get("index"), e.get("seed"), e.get("path"), SKIPPED, None, None, drift, str(exc))
                     for e in entries]
            continue
        except Exception as exc:  # one job failing to re-run must not end the audit of the others
            rows += [(*base, e.get("index"), e.get("seed"), e.get("path"), SKIPPED, None, None, drift,
                      f"re-run failed: {type(exc).__name__}: {one_line(exc)}") for e in entries]
            continue
        for position, entry in enumerate(entries):
            index = entry.get("index", position)
            shown = resolve_path(logged.folder, entry["path"])
            path = folder_file(logged.folder, entry["path"])
            row_notes = list(notes)
            if path is None:  # never opened: a saved image is the folder's own file
                rows.append((*base, index, entry.get("seed"), str(shown), SKIPPED, None, None, drift,
                             "; ".join([f"saved image outside the audited folder (not read): {shown}", *row_notes])))
                continue
            if not path.is_file():
                rows.append((*base, index, entry.get("seed"), str(path), SKIPPED, None, None, drift,
                             "; ".join([f"saved image missing: {path}", *row_notes])))
                continue
            if index not in images:
                rows.append((*base, index, entry.get("seed"), str(path), SKIPPED, None, None, drift,
                             "; ".join([f"the re-run made no image {index}", *row_notes])))
                continue
            if entry.get("sha256") and sha256_file(path) != entry["sha256"]:
                row_notes.append("the saved file changed since it was recorded")
            try:
                result = compare_images(path, images[index], min_psnr_db=min_psnr_db, max_abs_diff=max_abs_diff)
            except (OSError, ValueError, SyntaxError) as exc:  # PIL's ways of saying "not a readable image"
                rows.append((*base, index, entry.get("seed"), str(path), SKIPPED, None, None, drift,
                             "; ".join([f"saved image cannot be decoded ({exc})", *row_notes])))
                continue
            if result.note:
                row_notes.insert(0, result.note)
            rows.append((*base, index, entry.get("seed"), str(path), result.verdict, result.max_abs_diff,
                         result.psnr_db, drift, "; ".join(row_notes)))
    return pd.DataFrame(rows, columns=RERUN_COLUMNS)
