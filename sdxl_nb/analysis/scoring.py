"""`score(DIR)`: each recorded image scored once per scorer and weights, the values appended to scores.jsonl."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sdxl_nb.analysis.scores_file import append_score, scored_keys, scores_path
from sdxl_nb.errors import InputError


@dataclass(frozen=True)
class ScoreRun:
    """What one `score` call did: values written, (image, scorer) pairs already scored, recorded images not scored
    (missing, outside the folder, or not readable as an image)."""

    path: Path
    written: int
    skipped: int
    missing: int

    def __str__(self) -> str:
        return (f"{self.written} score(s) written to {self.path}, {self.skipped} already there"
                + (f", {self.missing} image(s) missing, outside the folder or unreadable" if self.missing else ""))


@dataclass(frozen=True)
class _Image:
    sha256: str
    path: str  # as the record names it (relative to the folder)
    job_id: str | None
    prompt: str  # the words CLIP reads


def clip_prompt(row) -> str:
    """The prompt a CLIP score compares an image with: an animation frame's own prompt, else the styled prompt
    the job ran, else its prompt; its syntax (tags, weights, BREAK) removed."""
    from sdxl_nb.request.prompt_syntax import plain_words, without_tags

    text = next((value for value in (row.get("frame_prompt"), row.get("styled_prompt"), row.get("prompt"))
                 if isinstance(value, str) and value), "")
    try:
        return plain_words(text)
    except InputError:  # a weight this version refuses: the words as written, tags removed
        return without_tags(text)


def _images(folder: Path, jobs=None) -> tuple[list[_Image], int]:
    """Every recorded image file inside the folder (each content once; `jobs`: only those jobs' images) and how
    many recorded ones are missing or lie outside it (a received jobs.log may name any path: such files are never
    opened)."""
    from sdxl_nb.analysis.frame import load_jobs
    from sdxl_nb.config.trusted_folders import within
    from sdxl_nb.record.store import sha256_file

    frame = load_jobs(folder)
    rows = frame[frame["image_path"].notna()]
    if jobs is not None:
        rows = rows[rows["job_id"].isin(set(jobs))]
    images: dict[str, _Image] = {}
    missing = 0
    for row in rows.to_dict("records"):
        path = within(folder, row["image_path"])
        if path is None or not path.is_file():
            missing += 1
            continue
        sha = sha256_file(path)  # the bytes scored, whatever the record says
        if sha not in images:
            images[sha] = _Image(sha, os.path.relpath(path, folder.resolve()), row.get("job_id"), clip_prompt(row))
    return list(images.values()), missing


def _pil(path: Path):
    """The image as RGB, or None when it cannot be decoded (damaged, not an image, a decompression bomb)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        return None


def score(folder: str | os.PathLike, scorers=("clip",), *, batch_size: int = 16, device: str | None = None,
          model: str | None = None, aesthetic_model: str | None = None, progress: bool = True,
          jobs=None) -> ScoreRun:
    """Score every recorded image of an output folder and append the values to its scores.jsonl.

    `scorers`: "clip" (CLIP score: 100 x cosine of image and prompt embeddings, at least 0, as torchmetrics
    defines it) and "aesthetic" (the LAION improved-aesthetic predictor on the same CLIP's image embeddings).
    `model`: the CLIP (a folder, "tiny-clip", or a repo id in the Hugging Face cache; default
    openai/clip-vit-large-patch14); `aesthetic_model`: the MLP's file (default SDXL_NB_AESTHETIC; the tiny twin
    with tiny-clip); `jobs`: job ids whose images alone are scored (default: every job). An image already scored
    by the same scorer and weights is skipped; the GPU is used when there is one (SDXL_NB_DEVICE overrides). Bad
    input (no jobs.log, unknown scorer, missing model) raises InputError before anything is written.
    """
    from sdxl_nb.analysis.scorers import build_scorers, check_scorer_names, clip_source
    from sdxl_nb.analysis.sources import log_paths

    scorers = [scorers] if isinstance(scorers, str) else list(scorers)
    if batch_size < 1:
        raise InputError(f"batch size {batch_size} is not positive; accepted: 1 or more images per batch")
    check_scorer_names(scorers)  # before any model is looked for
    folder = log_paths([folder])[0].parent
    clip = clip_source(model)
    chosen = build_scorers(scorers, clip, aesthetic_model)
    images, missing = _images(folder, jobs)
    done = scored_keys(folder)
    wanted = {scorer.id: {image.sha256 for image in images
                          if (image.sha256, scorer.id, scorer.weights_hash) not in done} for scorer in chosen}
    pending = [image for image in images if any(image.sha256 in shas for shas in wanted.values())]
    skipped = sum(len(images) - len(shas) for shas in wanted.values())
    written, unreadable = (_score_images(folder, pending, chosen, wanted, clip, batch_size, device, progress)
                           if pending else (0, 0))
    return ScoreRun(scores_path(folder), written, skipped, missing + unreadable)


def _score_images(folder: Path, pending: list[_Image], chosen, wanted: dict[str, set[str]], clip, batch_size: int,
                  device: str | None, progress: bool) -> tuple[int, int]:
    """Score the pending images batch by batch, appending each value as it is known; (written, unreadable)."""
    import torch
    from tqdm.auto import tqdm

    from sdxl_nb.analysis.scorers import (
        aesthetic_mlp,
        clip_scores,
        image_embeddings,
        load_clip,
        scoring_device,
        text_embeddings,
    )

    device = scoring_device(device)
    model, processor = load_clip(clip, device)
    embed_size = model.config.projection_dim
    mlps = {scorer.id: aesthetic_mlp(scorer.mlp_file, embed_size).to(device) for scorer in chosen if scorer.mlp_file}
    written = unreadable = 0
    with tqdm(total=len(pending), desc="scoring", unit="image", disable=not progress) as bar:
        for start in range(0, len(pending), batch_size):
            decoded = [(image, _pil(folder / image.path)) for image in pending[start:start + batch_size]]
            bar.update(len(decoded))
            batch = [image for image, pixels in decoded if pixels is not None]
            unreadable += len(decoded) - len(batch)
            if not batch:
                continue
            embeds = image_embeddings(model, processor, [pixels for _, pixels in decoded if pixels is not None],
                                      device)
            values: dict[str, list[float]] = {}
            for scorer in chosen:
                if scorer.id == "clip":
                    values["clip"] = clip_scores(embeds, text_embeddings(model, processor,
                                                                         [image.prompt for image in batch], device))
                else:
                    with torch.no_grad():
                        values[scorer.id] = mlps[scorer.id](embeds).squeeze(-1).float().tolist()
            moment = datetime.now(UTC).isoformat(timespec="seconds")
            for index, image in enumerate(batch):
                for scorer in chosen:
                    if image.sha256 in wanted[scorer.id]:
                        append_score(folder, {"image_sha256": image.sha256, "scorer": scorer.id,
                                              "weights": scorer.weights_hash, "value": values[scorer.id][index],
                                              "models": scorer.models, "image": image.path, "job_id": image.job_id,
                                              "scored_at": moment})
                        written += 1
    return written, unreadable
