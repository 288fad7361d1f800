"""What differs between kinds of job (the plan, the record's own fields, file names, extra files); a plain batch."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Protocol

from sdxl_nb.backends.base import RunPlan
from sdxl_nb.jobs.files import JobFiles
from sdxl_nb.record.job_record import png_info
from sdxl_nb.record.naming import image_name
from sdxl_nb.record.store import encode_png
from sdxl_nb.request.preflight import check_request
from sdxl_nb.request.resolve import ResolvedRequest


class JobKind(Protocol):
    """The job pipeline's questions to a kind of job (sdxl_nb.jobs.pipeline.run_job asks them in order)."""

    resolved: ResolvedRequest  # the settings every image shares (model, mode, size, steps, scheduler...)

    def run_plan(self, chunk_size: int | None, auto_tune: bool | None) -> RunPlan:
        """What the backend runs: one ImageSpec per image."""

    def warnings(self, backend, loaded, info) -> list[str]:
        """What to look at before it runs (the loaded model's own warnings are added by the pipeline)."""

    def start_record(self, record: dict) -> None:
        """The kind's own record fields, before the run (the record is masked after this)."""

    def image_file(self, record: dict, index: int, seed: int, image, call: int,
                   moment: datetime) -> tuple[str, bytes, dict[str, dict]]:
        """(file name, PNG bytes with metadata, the record's entries naming it by field) of one finished image."""

    def finish_files(self, record: dict, images: dict, files: JobFiles, moment: datetime) -> dict[str, tuple]:
        """Files made from all saved images (grid, animations): {name: (path, value for the result or None)}."""


class ImagesJob:
    """txt2img, img2img and inpaint: image i of the batch uses seed + i and the request's prompt."""

    def __init__(self, resolved: ResolvedRequest):
        self.resolved = resolved

    def run_plan(self, chunk_size: int | None, auto_tune: bool | None) -> RunPlan:
        # Batched and one-by-one runs can differ in the last bit; exact re-runs use the same chunking.
        return RunPlan.for_request(self.resolved, chunk_size=chunk_size or self.resolved.batch, auto_tune=auto_tune)

    def warnings(self, backend, loaded, info) -> list[str]:
        return check_request(self.resolved, info, engine=backend)

    def start_record(self, record: dict) -> None:
        return None

    def image_file(self, record, index, seed, image, call, moment):
        name = image_name(moment, record["prompt"], seed, index)  # the record's prompt: secrets already masked
        # `call`: which pipeline call made it. Replicas and auto-tuning group images in ways the chunk size alone
        # cannot say, and batching can move a pixel's last bit, so a re-run repeats the recorded calls.
        entry = {"seed": seed, "index": index, "call": call}
        return name, encode_png(image, png_info(record, index, seed, name)), {"images": entry}

    def finish_files(self, record: dict, images: dict, files: JobFiles, moment: datetime) -> dict[str, tuple[Path, object]]:
        if not self.resolved.controlnets:
            return {}
        from sdxl_nb.jobs.control_files import save_control_maps

        return save_control_maps(record, self.resolved, files, moment)
