"""Scheduler configs survive jobs.log: infinities stored as text, turned back into floats by every reader."""

import json
import math

import numpy as np
from diffusers import DPMSolverMultistepScheduler

from sdxl_nb.audit.replay_request import scheduler_kwargs
from sdxl_nb.record.config_codec import decode_config, encode_config
from sdxl_nb.record.joblog import encode_record


def test_encode_makes_configs_json_and_stable_and_decode_brings_infinities_back():
    config = {"b": (1, 2), "a": math.inf, "_diffusers_version": "0.1", "c": np.float32(0.5), "d": [-math.inf],
              "e": {"x": -math.inf}, "f": None, "g": "text"}
    encoded = encode_config(config)
    assert encoded == {"a": "inf", "b": [1, 2], "c": 0.5, "d": ["-inf"], "e": {"x": "-inf"}, "f": None, "g": "text"}
    assert list(encoded) == sorted(encoded)
    assert decode_config(encoded) == {"a": math.inf, "b": [1, 2], "c": 0.5, "d": [-math.inf], "e": {"x": -math.inf},
                                      "f": None, "g": "text"}


def test_a_real_scheduler_config_round_trips_through_a_jobs_log_line():
    scheduler = DPMSolverMultistepScheduler(use_karras_sigmas=True)
    assert scheduler.config.lambda_min_clipped == -math.inf  # the infinity this codec exists for
    line = encode_record({"scheduler": {"config": encode_config(dict(scheduler.config))}})
    recorded = json.loads(line)["scheduler"]["config"]
    assert recorded["lambda_min_clipped"] == "-inf"
    rebuilt = DPMSolverMultistepScheduler.from_config(decode_config(recorded))
    assert encode_config(dict(rebuilt.config)) == recorded
    assert rebuilt.config.lambda_min_clipped == -math.inf
    assert scheduler_kwargs(recorded)["lambda_min_clipped"] == -math.inf  # the audit's re-run reads it the same way
