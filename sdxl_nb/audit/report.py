"""The whole audit of one or more logs: integrity, drift, optional re-runs; as text or JSON-able data."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from sdxl_nb.analysis.sources import LineProblem, LoggedRecord, log_paths, read_logged_records
from sdxl_nb.audit.backends import NOT_RERUN_REMOTE
from sdxl_nb.audit.compare import BIT_EXACT, CLOSE_MAX_ABS_DIFF, CLOSE_MIN_PSNR_DB
from sdxl_nb.audit.drift import FILE_COLUMNS, engine_environment, environment_drift, file_drift, preset_drift
from sdxl_nb.audit.integrity import IntegrityReport, check_integrity
from sdxl_nb.audit.rerun import NOT_RERUN_UNTRUSTED, rerun_jobs, saved_entries, select_for_rerun
from sdxl_nb.config.presets import Presets

LISTED = 25  # text reports list this many items per section, then a count (JSON has everything)
# A record nested deeper than this is no job record (real ones are a few levels deep); deeper values would also
# overflow the recursion of printing them.
MAX_RECORD_DEPTH = 32


@dataclass
class AuditReport:
    sources: list[str]
    jobs: int
    images: int
    line_problems: list[LineProblem]
    integrity: IntegrityReport
    environment_drift: pd.DataFrame
    environment_compared: str  # what the current environment was known from
    preset_drift: pd.DataFrame
    reruns: pd.DataFrame | None  # None when no re-run was asked for
    file_drift: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FILE_COLUMNS))  # LoRAs, embeddings
    servers: dict = field(default_factory=dict)  # job id -> the ComfyUI server it was made on (ComfyUI jobs only)

    def problems(self) -> list[str]:
        """Everything that makes the audit fail: unreadable lines, damaged or stray files, re-runs
        that were not bit-exact (including those that could not run)."""
        lines = [f"unreadable line {problem}" for problem in self.line_problems]
        lines += self.integrity.problems()
        if self.reruns is not None:
            # One line per job not re-run for a file outside where it may be read from: the note names the file.
            untrusted = self.reruns[self.reruns["verdict"].isin(NOT_RERUN_UNTRUSTED)]
            lines += list(dict.fromkeys(f"job {row.job_id}: {row.note}" for row in untrusted.itertuples()))
            failing = ~self.reruns["verdict"].isin([BIT_EXACT, NOT_RERUN_REMOTE, *NOT_RERUN_UNTRUSTED])
            for row in self.reruns[failing].itertuples():
                detail = ""
                if row.max_abs_diff is not None and not pd.isna(row.max_abs_diff):
                    detail = f" (max abs diff {row.max_abs_diff:g}, PSNR {row.psnr_db:g} dB)"
                note = f": {row.note}" if row.note else ""
                lines.append(f"re-run {row.verdict}{detail}: job {row.job_id} image {row.image_index}{note}")
        return lines

    def warnings(self) -> list[str]:
        """Worth knowing, not failures: drift (the records keep what ran) and inputs gone."""
        lines = [f"job {row.job_id}: {row.differences}: {row.message}" for row in self.environment_drift.itertuples()]
        lines += [row.message + f" (recorded {row.recorded}, now {row.current})" for row in self.preset_drift.itertuples()]
        lines += [row.message + f" (sha256 {row.recorded}, now {row.current})" for row in self.file_drift.itertuples()]
        lines += self.integrity.warnings()
        if self.reruns is not None:
            remote = self.reruns[self.reruns["verdict"] == NOT_RERUN_REMOTE]
            lines += sorted({f"job {row.job_id}: {NOT_RERUN_REMOTE}: {row.note}" for row in remote.itertuples()})
        return lines

    def _not_rerun_remote(self) -> dict[str, str]:
        """job id -> the ComfyUI server it was made on, for each job not re-run because that server is not here."""
        if self.reruns is None:
            return {}
        rows = self.reruns[self.reruns["verdict"] == NOT_RERUN_REMOTE]
        return {row.job_id: _made_on(self.servers.get(row.job_id)) for row in rows.itertuples()}

    @property
    def ok(self) -> bool:
        return not self.problems()

    def to_dict(self) -> dict:
        return _plain({
            "ok": self.ok, "sources": self.sources, "jobs": self.jobs, "images": self.images,
            "problems": self.problems(), "warnings": self.warnings(),
            "line_problems": [problem.as_dict() for problem in self.line_problems],
            "integrity": {"files_checked": len(self.integrity.files),
                          "damaged": self.integrity.damaged.to_dict(orient="records"),
                          "inputs_unavailable": self.integrity.inputs_unavailable.to_dict(orient="records"),
                          "untracked": [str(p) for p in self.integrity.untracked],
                          "leftovers": [str(p) for p in self.integrity.leftovers]},
            "environment_compared": self.environment_compared,
            "environment_drift": self.environment_drift.to_dict(orient="records"),
            "preset_drift": self.preset_drift.to_dict(orient="records"),
            "file_drift": self.file_drift.to_dict(orient="records"),
            "close_threshold": {"min_psnr_db": CLOSE_MIN_PSNR_DB, "max_abs_diff": CLOSE_MAX_ABS_DIFF},
            "reruns": None if self.reruns is None else self.reruns.to_dict(orient="records"),
        })

    def text(self) -> str:
        """A readable report: one summary line per audit, details where something is off, then the verdict."""
        integrity = self.integrity
        checked = len(integrity.files[integrity.files["role"] != "input"])
        out = [f"audit of {', '.join(self.sources)}: {self.jobs} jobs, {self.images} saved images",
               f"log lines unreadable (skipped): {len(self.line_problems)}",
               f"integrity: {checked - len(integrity.damaged)} of {checked} named files intact; "
               f"{len(integrity.untracked)} untracked file(s); {len(integrity.leftovers)} leftover temp file(s)"]
        _section(out, "", integrity.warnings())
        out.append(f"environment drift ({self.environment_compared}): {len(self.environment_drift)} job(s) differ")
        _section(out, "", [f"job {r.job_id}: {r.differences}" for r in self.environment_drift.itertuples()])
        out.append(f"preset drift: {len(self.preset_drift)} preset(s) changed since use")
        _section(out, "", [f"{r.message} (recorded {r.recorded}, now {r.current})" for r in self.preset_drift.itertuples()])
        out.append(f"file drift (LoRAs, embeddings, upscalers, ControlNets): {len(self.file_drift)} file(s) changed "
                   "since use")
        _section(out, "", [f"{r.message} (sha256 {r.recorded}, now {r.current})" for r in self.file_drift.itertuples()])
        if self.reruns is not None:
            counts = self.reruns["verdict"].value_counts().to_dict() if len(self.reruns) else {}
            summary = ", ".join(f"{count} {verdict}" for verdict, count in counts.items()) or "nothing to re-run"
            out.append(f"re-run of {self.reruns['job_id'].nunique()} job(s) (close = PSNR >= {CLOSE_MIN_PSNR_DB:g} dB "
                       f"and max abs diff <= {CLOSE_MAX_ABS_DIFF}): {summary}")
        problems = self.problems()
        remote = self._not_rerun_remote()
        if not problems and remote:  # never "bit-exact" for jobs that were not re-run
            rerun = self.reruns[self.reruns["verdict"] != NOT_RERUN_REMOTE]
            out.append("RESULT: intact" + (", re-runs bit-exact" if len(rerun) else "") + f"; {len(remote)} job(s) "
                       f"not re-run (made on ComfyUI server {', '.join(sorted(set(remote.values())))})")
        elif not problems:
            out.append("RESULT: intact" + (" and bit-exact" if self.reruns is not None else ""))
        else:
            out.append(f"RESULT: {len(problems)} problem(s)")
            _section(out, "", problems)
        return "\n".join(out)


def _made_on(record_server: object) -> str:
    return str(record_server) if record_server else "(unknown)"


def _section(out: list[str], title: str, items: list[str]) -> None:
    if not items:
        return
    if title:
        out.append(f"{title}:")
    out += [f"  - {item}" for item in items[:LISTED]]
    if len(items) > LISTED:
        out.append(f"  ... and {len(items) - LISTED} more (--json lists all)")


def _plain(value):
    """JSON-able: NaN/NA -> null, infinities as text (as the job record stores them), numpy scalars unwrapped."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _depth(value: object, limit: int) -> bool:
    """Whether a parsed JSON value nests deeper than `limit` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack += [(child, depth + 1) for child in item.values()]
        elif isinstance(item, list):
            stack += [(child, depth + 1) for child in item]
    return False


def _record_problem(record: dict) -> str | None:
    for key in ("job_id", "mode"):
        if record.get(key) is not None and not isinstance(record[key], str):
            return f"its {key} is a JSON {type(record[key]).__name__}, not text; skipped"
    if _depth(record, MAX_RECORD_DEPTH):
        return f"nested deeper than {MAX_RECORD_DEPTH} levels (no job record is); skipped"
    return None


def usable_records(records: list[LoggedRecord],
                   problems: list[LineProblem]) -> tuple[list[LoggedRecord], list[LineProblem]]:
    """The records an audit can read (a job id and mode that are text, no absurd nesting); each other one is a line
    problem, as a line that does not parse is: a received jobs.log may hold anything."""
    kept, problems = [], list(problems)
    for logged in records:
        problem = _record_problem(logged.record)
        if problem:
            problems.append(LineProblem(str(logged.log), logged.line, problem))
        else:
            kept.append(logged)
    return kept, problems


def run_audit(*sources: str | os.PathLike, rerun: int | str | None = None, job_ids: tuple[str, ...] = (),
              engine=None, presets: Presets | None = None,
              on_job: Callable[[LoggedRecord, str], None] | None = None, remotes=(),
              on_skip: Callable[[LoggedRecord, str], None] | None = None) -> AuditReport:
    """Audit logs/output folders: integrity and drift always; re-runs of the last `rerun` jobs with
    images ("all" for every one) or of `job_ids`. Re-runs load the engine (torch); nothing else does.
    ComfyUI jobs are compared with their server, never with this machine's libraries; `on_skip(record, why)`
    hears of each one not re-run because its server is not reachable."""
    from sdxl_nb.audit.drift import comfy_server

    logs = log_paths(sources)
    records, line_problems = usable_records(*read_logged_records(*logs))
    chosen = select_for_rerun(records, rerun, job_ids)
    integrity = check_integrity(records, [log.parent for log in logs])
    reruns = None
    if chosen or rerun is not None or job_ids:
        if engine is None:
            from sdxl_nb.backends.local import get_engine

            engine = get_engine()
    if engine is not None:
        drift, compared = environment_drift(records, engine_environment(engine)), "full environment of this engine"
    else:
        drift, compared = environment_drift(records), "installed library versions only; GPU/dtype need --rerun"
    if chosen or rerun is not None or job_ids:
        reruns = rerun_jobs(chosen, engine, presets=presets, on_job=on_job, remotes=remotes, on_skip=on_skip)
    return AuditReport(
        sources=[str(log) for log in logs], jobs=len(records),
        images=sum(len(saved_entries(logged.record)) for logged in records), line_problems=line_problems,
        integrity=integrity, environment_drift=drift, environment_compared=compared,
        preset_drift=preset_drift(records, presets), reruns=reruns, file_drift=file_drift(records),
        servers={logged.record.get("job_id"): comfy_server(logged.record) for logged in records
                 if comfy_server(logged.record)})
