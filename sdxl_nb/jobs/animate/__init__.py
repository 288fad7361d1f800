"""Animations: seed walks, slerp between seeds, prompt travel; frames, grid, GIF/WebP, one record; no torch here."""

from sdxl_nb.jobs.animate.job import AnimationResult, animate, prepare_animation
from sdxl_nb.jobs.animate.plan import MODES, SCHEDULES, AnimationPlan, AnimationRequest
from sdxl_nb.jobs.animate.rerun import check_rerun, rerun_frames

__all__ = ["MODES", "SCHEDULES", "AnimationPlan", "AnimationRequest", "AnimationResult", "animate", "check_rerun",
           "prepare_animation", "rerun_frames"]
