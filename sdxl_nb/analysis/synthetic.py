"""Synthetic jobs.log records shaped like the lab's own (every mode and status), for benchmarks and tests."""

from __future__ import annotations

import hashlib
import os
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

# (id, revision, dtype, seconds per step per megapixel)
_MODELS = [("stabilityai/stable-diffusion-xl-base-1.0", "462165984030", "float16", 0.085),
           ("SG161222/RealVisXL_V5.0", "4a3f0e4f4d3c", "float16", 0.088),
           ("stabilityai/sdxl-turbo", "71153311d324", "float16", 0.08),
           ("tiny-sdxl", "759e2ead3331", "float32", 0.004)]
_SCHEDULERS = [("Euler", "EulerDiscreteScheduler", {}),
               ("DPM++ 2M Karras", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
               ("DPM++ 2M", "DPMSolverMultistepScheduler", {}),
               ("UniPC", "UniPCMultistepScheduler", {}),
               ("Euler a", "EulerAncestralDiscreteScheduler", {})]
_STYLES = [("None / Raw", "{prompt}", ""), ("Cinematic", "cinematic film still, {prompt}, shallow depth of field",
                                             "cartoon, anime, lowres"),
           ("Photoreal", "RAW photo, {prompt}, 8k, detailed skin", "painting, cgi, blurry"),
           ("Pencil Sketch", "pencil sketch of {prompt}, graphite, paper texture", "color, photo")]
_SIZES = [(1024, 1024), (1152, 896), (896, 1152), (1216, 832), (768, 768), (512, 512)]
_WORDS = ("a lighthouse at dusk|an old fox in the snow|portrait of a sailor|a neon city street in the rain|"
          "a bowl of ripe figs|mountains above the clouds|a red bicycle against a blue wall|a dragon made of glass|"
          "a quiet library at night|an astronaut riding a horse").split("|")
_ADJECTIVES = ["", "cinematic", "moody", "bright", "misty", "golden hour", "highly detailed", "minimal"]
_GPUS = ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "NVIDIA GeForce RTX 4090"]


def _scheduler_config(class_name: str, kwargs: dict) -> dict:
    # A full diffusers-style config (about thirty keys), as the engine records it.
    config = {"beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
              "interpolation_type": "linear", "num_train_timesteps": 1000, "prediction_type": "epsilon",
              "rescale_betas_zero_snr": False, "sigma_max": None, "sigma_min": None, "steps_offset": 1,
              "timestep_spacing": "leading", "timestep_type": "discrete", "trained_betas": None,
              "use_beta_sigmas": False, "use_exponential_sigmas": False, "use_karras_sigmas": False,
              "final_sigmas_type": "zero"}
    if "Multistep" in class_name:
        config.update(algorithm_type="dpmsolver++", dynamic_thresholding_ratio=0.995, euler_at_final=False,
                      lambda_min_clipped="-inf", lower_order_final=True, sample_max_value=1.0, solver_order=2,
                      solver_type="midpoint", thresholding=False, use_lu_lambdas=False, variance_type=None,
                      flow_shift=1.0, use_dynamic_shifting=False, use_flow_sigmas=False)
    config.update(kwargs)
    return dict(sorted(config.items()))


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class SyntheticRecords:
    """Realistic records: about 85% ok, 8% interrupted, 7% failed; every mode; batches of 1-4; animations."""

    def __init__(self, seed: int = 0, start: datetime | None = None):
        self.rng = random.Random(seed)
        self.moment = start or datetime(2026, 1, 5, 9, 0, tzinfo=timezone(timedelta(hours=1)))
        self.configs = [(name, cls, _scheduler_config(cls, kwargs)) for name, cls, kwargs in _SCHEDULERS]
        self.envs = [{"python": "3.11.9", "platform": "linux", "torch": torch, "diffusers": diffusers,
                      "transformers": "4.46.3", "sdxl_nb": "0.1.0", "cuda": "12.4", "gpu": gpu,
                      "deterministic": False, "dtype": "float16", "attention": "sdpa"}
                     for torch, diffusers in (("2.5.1+cu124", "0.31.0"), ("2.6.0+cu124", "0.32.2"))
                     for gpu in _GPUS]

    def record(self, number: int) -> dict:
        rng = self.rng
        self.moment += timedelta(seconds=rng.uniform(5, 90))
        model_id, revision, dtype, s_per_mpx_step = rng.choice(_MODELS)
        name, cls, config = rng.choice(self.configs)
        style, template, style_negative = rng.choice(_STYLES)
        width, height = rng.choice(_SIZES)
        mode = rng.choices(("txt2img", "img2img", "inpaint", "animate"), (70, 15, 8, 7))[0]
        status = rng.choices(("ok", "interrupted", "failed"), (85, 8, 7))[0]
        prompt = f"{rng.choice(_WORDS)}, {rng.choice(_ADJECTIVES)}".strip(", ")
        negative = rng.choice(("", "blurry", "text, watermark"))
        steps, cfg = (4, 0.0) if "turbo" in model_id else (rng.choice((20, 25, 30, 40)), rng.choice((5.0, 6.5, 7.0)))
        batch = 1 if mode == "animate" else rng.choice((1, 1, 2, 4))
        seed = rng.randrange(2**32 - 8)
        frames = rng.choice((8, 12, 16)) if mode == "animate" else 0
        produced = {"ok": batch, "interrupted": rng.randrange(batch), "failed": 0}[status]
        per_step = s_per_mpx_step * width * height / 1e6 * rng.uniform(0.9, 1.1)
        generate_s = None if status == "failed" else per_step * steps * max(produced, 1) * max(frames, 1)
        started = self.moment
        stamp = started.strftime("%Y%m%d-%H%M%S")
        slug = prompt.split(",")[0].replace(" ", "-")[:40]
        env = rng.choice(self.envs)
        record = {
            "schema": 1, "job_id": _sha(f"job{number}")[:32], "mode": mode, "status": status,
            "error": "out of memory on cuda at 1024x1024, 4 image(s) at once" if status == "failed" else None,
            "started_at": started.isoformat(timespec="milliseconds"),
            "finished_at": (started + timedelta(seconds=(generate_s or 0.5) + 0.3)).isoformat(timespec="milliseconds"),
            "model": {"id": model_id, "revision": revision, "source": "embedded" if model_id == "tiny-sdxl" else "hf-cache",
                      "dtype": dtype, "vae": None},
            "device": {"type": "cuda", "name": env["gpu"]},
            "scheduler": {"name": name, "class": cls, "config": config},
            "style": {"name": style, "hash": _sha(template)[:12]},
            "prompt": prompt, "negative_prompt": negative,
            "styled_prompt": template.replace("{prompt}", prompt),
            "effective_negative_prompt": ", ".join(p for p in (negative, style_negative) if p),
            "steps": steps, "cfg": cfg, "width": width, "height": height, "batch": batch, "seed": seed,
            "seeds": [seed + i for i in range(batch)],
            "strength": 0.6 if mode in ("img2img", "inpaint") else None,
            "init_image": {"path": "inputs/init.png", "sha256": _sha("init"), "size": [width, height]}
            if mode in ("img2img", "inpaint") else None,
            "mask_image": {"path": "inputs/mask.png", "sha256": _sha("mask"), "size": [width, height]}
            if mode == "inpaint" else None,
            "images": [], "timings": {"load_s": rng.choice((0.0, 0.0, 0.0, 14.2)), "generate_s": generate_s,
                                      "save_s": None if status == "failed" else 0.05 * produced,
                                      "total_s": (generate_s or 0.0) + 0.4},
            "peak_memory_bytes": None if status == "failed" else int(6.5e9 + 2.2e3 * width * height * batch),
            "events": [] if status != "interrupted" else ["stopped at step 7 of chunk 2"],
            "warnings": [], "notes": [f"cfg {cfg:g} from model {model_id}"], "env": env, "chunk_size": batch,
        }
        if mode == "animate":
            count = 0 if status == "failed" else frames if status == "ok" else rng.randrange(frames)
            ts = [round(i / max(frames - 1, 1), 4) for i in range(frames)]
            record["animation"] = {"mode": "slerp", "source": "txt2img", "frames": frames, "seed": seed,
                                   "seed_end": seed + 1, "prompt": prompt, "prompt_end": None, "schedule": "linear",
                                   "t": ts, "variation": None, "fps": 8, "ping_pong": False,
                                   "order": list(range(frames)), "batch_size": None}
            record["frames"] = [{"index": i, "seed": seed, "seed_end": seed + 1, "t": ts[i], "prompt": prompt,
                                 "styled_prompt": prompt, "prompt_end": None, "styled_prompt_end": None,
                                 "call": i // 8, "path": f"{stamp}_{slug}_frame_{i + 1:03d}.png",
                                 "sha256": _sha(f"{number}f{i}")}
                                for i in range(count)]
            record["grid"] = {"path": f"{stamp}_{slug}_grid.png", "sha256": _sha(f"{number}g")} if count else None
            record["animations"] = [{"format": fmt, "path": f"{slug}.{fmt}", "sha256": _sha(f"{number}{fmt}"),
                                     "frames": count, "duration_ms": 125, "loop": 0}
                                    for fmt in ("gif", "webp")] if count else []
        else:
            record["images"] = [{"path": f"{stamp}_{slug}_seed{seed + i}_{i + 1:02d}.png", "sha256": _sha(f"{number}i{i}"),
                                 "seed": seed + i, "index": i} for i in range(produced)]
        return record


def write_synthetic_log(path: str | os.PathLike, lines: int, *, seed: int = 0, bad_lines: int = 0) -> Path:
    """Write a jobs.log of `lines` realistic records (plus `bad_lines` corrupt ones mixed in, and none torn)."""
    path = Path(path)
    records = SyntheticRecords(seed)
    bad_at = set(random.Random(seed + 1).sample(range(lines), bad_lines)) if bad_lines else set()
    with open(path, "wb") as handle:
        batch: list[bytes] = []
        for number in range(lines):
            line = orjson.dumps(records.record(number)) + b"\n"
            batch.append(line[: len(line) // 2] + b"\n" if number in bad_at else line)
            if len(batch) >= 10_000:
                handle.write(b"".join(batch))
                batch.clear()
        handle.write(b"".join(batch))
    return path
