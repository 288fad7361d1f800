"""Scenario batches: a JSON list of named requests run one job each, resumable from jobs.log; no torch."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sdxl_nb.errors import GenerationError, InputError, one_line
from sdxl_nb.record.joblog import JOBS_LOG, read_records
from sdxl_nb.request.resolve import GenerationRequest

_REQUEST_FIELDS = tuple(f.name for f in dataclasses.fields(GenerationRequest))
_PATH_FIELDS = ("init_image", "mask_image")
ACCEPTED_KEYS = ("name", "negative") + _REQUEST_FIELDS


@dataclass(frozen=True)
class Scenario:
    name: str
    index: int  # position in the file (0-based)
    request: GenerationRequest
    content_hash: str  # of the scenario as written: an edited scenario runs again


@dataclass
class ScenarioOutcome:
    name: str
    index: int
    status: str  # ok / interrupted / failed / skipped (done in an earlier run) / not run (stopped before it)
    job_id: str | None = None
    paths: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    rank: int = 0


@dataclass
class BatchSummary:
    batch_id: str
    outcomes: list[ScenarioOutcome]
    seconds: float

    def count(self, status: str) -> int:
        return sum(outcome.status == status for outcome in self.outcomes)

    @property
    def ok(self) -> bool:
        """Every scenario is done (now or in an earlier run)."""
        return all(outcome.status in ("ok", "skipped") for outcome in self.outcomes)

    def lines(self) -> list[str]:
        counts = ", ".join(f"{self.count(s)} {s}" for s in ("ok", "skipped", "failed", "interrupted", "not run")
                           if self.count(s))
        head = f"batch {self.batch_id}: {len(self.outcomes)} scenario(s): {counts or 'none'} in {self.seconds:.1f} s"
        problems = [f"  {o.status}: {o.name}" + (f": {o.error}" if o.error else "")
                    for o in self.outcomes if o.status not in ("ok", "skipped")]
        return [head, *problems]


def _fail(source: str, message: str) -> InputError:
    return InputError(f"{source}: {message}")


def scenario_hash(entry: dict) -> str:
    return hashlib.sha256(json.dumps(entry, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:12]


def parse_scenarios(data: object, source: str = "scenarios", base_dir: Path | None = None) -> list[Scenario]:
    """Validate the shape of a scenario list (names, known keys) and build one request per scenario."""
    if isinstance(data, dict) and isinstance(data.get("scenarios"), list):
        data = data["scenarios"]
    if not isinstance(data, list) or not data:
        raise _fail(source, "expected a non-empty JSON list of scenarios like "
                            '[{"name": "fox", "prompt": "a red fox", "seed": 1}]')
    scenarios, seen = [], set()
    for index, entry in enumerate(data):
        where = f"scenario #{index + 1}"
        if not isinstance(entry, dict):
            raise _fail(source, f"{where} is {type(entry).__name__}, expected an object with name and prompt")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _fail(source, f"{where} needs a non-empty text \"name\"")
        where = f"scenario {name!r}"
        if name in seen:
            raise _fail(source, f"{where} appears twice; names must be unique (they are how a re-run finds done ones)")
        seen.add(name)
        unknown = sorted(set(entry) - set(ACCEPTED_KEYS))
        if unknown:
            raise _fail(source, f"{where} has unknown key(s) {', '.join(unknown)}; accepted: {', '.join(ACCEPTED_KEYS)}")
        if "prompt" not in entry:
            raise _fail(source, f"{where} needs a \"prompt\"")
        if "negative" in entry and "negative_prompt" in entry:
            raise _fail(source, f"{where} gives both negative and negative_prompt; give one")
        fields = {key: value for key, value in entry.items() if key in _REQUEST_FIELDS}
        if "negative" in entry:
            fields["negative_prompt"] = entry["negative"]
        if fields.get("negative_prompt") is None:
            fields["negative_prompt"] = ""
        for key in _PATH_FIELDS:  # relative image paths are relative to the scenarios file
            if isinstance(fields.get(key), str) and base_dir is not None and not os.path.isabs(fields[key]):
                fields[key] = str(base_dir / fields[key])
        scenarios.append(Scenario(name=name, index=index, request=GenerationRequest(**fields),
                                  content_hash=scenario_hash(entry)))
    return scenarios


def load_scenarios(path: str | os.PathLike) -> list[Scenario]:
    """Read a scenarios JSON file; any problem is one InputError line naming the file."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"scenarios file {source!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"scenarios file {source!r} is not readable UTF-8 text ({type(exc).__name__})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(source, f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    return parse_scenarios(data, source, base_dir=path.resolve().parent)


def check_scenarios(scenarios: Sequence[Scenario], *, local_models: bool = True) -> None:
    """Resolve every scenario before anything runs, so a bad one stops the batch with nothing written."""
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model
    from sdxl_nb.request.prepare import prepare

    presets = load_presets()
    for scenario in scenarios:
        try:
            resolved = prepare(scenario.request, presets)
            if local_models:
                info = find_model(resolved.model.id, presets)
                if not info.available:
                    raise InputError(info.reason)
        except InputError as exc:
            raise InputError(f"scenario {scenario.name!r}: {exc}") from None


def done_scenarios(out_dir: str | os.PathLike, batch_id: str) -> dict[str, str]:
    """{scenario name: content hash} of the scenarios of this batch that ended ok, per jobs.log."""
    done = {}
    for record in read_records(Path(out_dir) / JOBS_LOG):
        tag = record.get("scenario")
        if isinstance(tag, dict) and tag.get("batch_id") == batch_id and record.get("status") == "ok":
            done[tag.get("name")] = tag.get("hash")
    return done


def plan_batch(scenarios: Sequence[Scenario], out_dir: str | os.PathLike, batch_id: str
               ) -> tuple[list[Scenario], list[Scenario]]:
    """(to run, already done): a scenario is done when an ok record of this batch has its name and content."""
    done = done_scenarios(out_dir, batch_id)
    pending = [s for s in scenarios if done.get(s.name) != s.content_hash]
    return pending, [s for s in scenarios if done.get(s.name) == s.content_hash]


ScenarioCallback = Callable[[ScenarioOutcome, int, int], None]


def run_batch(scenarios: Sequence[Scenario] | Sequence[dict] | str | os.PathLike, *, batch_id: str | None = None,
              out_dir: str | os.PathLike | None = None, engine=None, generate: Callable | None = None,
              on_scenario: ScenarioCallback | None = None, on_start: Callable[[Scenario], None] | None = None,
              on_progress: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
              chunk_size: int | None = None, processes=None) -> BatchSummary:
    """Run every scenario not yet done as one job each; failures are recorded and the batch goes on.

    `scenarios`: a scenarios file (its stem is the default batch id), or a list of scenario dicts or
    Scenario objects with an explicit `batch_id`. `generate` replaces sdxl_nb.jobs.pipeline.generate (e.g. a
    ComfyUI backend's). `processes` (sdxl_nb.backends.local.placement.Processes) splits the pending
    scenarios across the processes `accelerate launch` started; every record then names its rank.
    """
    from sdxl_nb.jobs.generate import generate as local_generate
    from sdxl_nb.jobs.pipeline import default_output_dir
    from sdxl_nb.record.store import check_output_dir

    started = time.perf_counter()
    if isinstance(scenarios, (str, os.PathLike)):
        batch_id = batch_id or Path(scenarios).stem
        scenarios = load_scenarios(scenarios)
    elif scenarios and isinstance(scenarios[0], dict):
        scenarios = parse_scenarios(list(scenarios))
    if not batch_id:
        raise InputError("give batch_id: the name under which the scenarios are recorded and resumed")
    folder = check_output_dir(out_dir or default_output_dir())
    check_scenarios(scenarios, local_models=generate is None and (engine is None or engine.capabilities.local_models))
    pending, done = plan_batch(scenarios, folder, batch_id)
    outcomes = [ScenarioOutcome(name=s.name, index=s.index, status="skipped") for s in done]
    placement = None
    if processes is not None:
        processes.wait()  # every process has read jobs.log before any writes to it: the same plan everywhere
        pending = processes.split(pending)
        placement = processes.placement
        if engine is None and generate is None:
            from sdxl_nb.backends.local import Engine
            from sdxl_nb.backends.local.core import kernel_engine_options

            engine = Engine(device=placement.device, options=kernel_engine_options())
    run_one = generate or local_generate
    stop = should_stop or (lambda: False)
    mine = []
    for number, scenario in enumerate(pending, start=1):
        if stop():
            mine += [ScenarioOutcome(name=s.name, index=s.index, status="not run") for s in pending[number - 1:]]
            break
        if on_start:
            on_start(scenario)
        extra = {"scenario": {"batch_id": batch_id, "name": scenario.name, "hash": scenario.content_hash,
                              "index": scenario.index}}
        if placement is not None:
            extra["distributed"] = placement.record()
        outcome = _run_scenario(run_one, scenario, extra, out_dir=folder, engine=engine, on_progress=on_progress,
                                should_stop=should_stop, chunk_size=chunk_size)
        outcome.rank = placement.rank if placement else 0
        mine.append(outcome)
        if on_scenario:
            on_scenario(outcome, number, len(pending))
    if processes is not None:
        mine = processes.gather(mine)
    outcomes = sorted(outcomes + mine, key=lambda o: o.index)
    return BatchSummary(batch_id=batch_id, outcomes=outcomes, seconds=time.perf_counter() - started)


def _run_scenario(run_one: Callable, scenario: Scenario, extra: dict, **kwargs) -> ScenarioOutcome:
    started = time.perf_counter()
    outcome = ScenarioOutcome(name=scenario.name, index=scenario.index, status="failed")
    optional = {key: value for key, value in kwargs.items() if value is not None}
    try:
        result = run_one(scenario.request, extra=extra, **optional)
    except (GenerationError, InputError) as exc:
        outcome.error = str(exc)
    except Exception as exc:  # one scenario's surprise must not end the batch; it is reported by name
        outcome.error = f"{type(exc).__name__}: {one_line(exc)}"
    else:
        outcome.status = result.status
        outcome.job_id = result.record["job_id"]
        outcome.paths = [str(path) for path in result.paths]
        outcome.error = result.record.get("error")
    outcome.seconds = time.perf_counter() - started
    return outcome


def tqdm_progress(total: int, **tqdm_options) -> tuple[ScenarioCallback, Callable[[], None]]:
    """A scenario callback driving a tqdm bar (a widget in Jupyter), and a function that closes it."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="scenario", **tqdm_options)

    def on_scenario(outcome: ScenarioOutcome, _number: int, _total: int) -> None:
        bar.update(1)
        bar.set_postfix_str(f"{outcome.name}: {outcome.status}")

    return on_scenario, bar.close
