"""Every SDXL_NB_* setting, read from the environment at call time (so a changed variable takes effect)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_OUTPUT_DIR = "output_images"


def output_dir() -> Path:
    """SDXL_NB_OUTPUT: where images and jobs.log go (default output_images)."""
    return Path(os.environ.get("SDXL_NB_OUTPUT") or DEFAULT_OUTPUT_DIR)


def s3_url() -> str | None:
    """SDXL_NB_S3_URL: the S3/MinIO bucket every job is mirrored to (unset: no mirror)."""
    return os.environ.get("SDXL_NB_S3_URL") or None
