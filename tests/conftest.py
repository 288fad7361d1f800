"""Shared fixtures: an isolated cache and HF hub per session, one CPU engine, small fast requests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SMALL = dict(width=64, height=64, steps=2)


@pytest.fixture(scope="session", autouse=True)
def isolated_env(tmp_path_factory):
    """Tests never touch the user's home: own sdxl_nb cache, empty HF hub, offline, and a temporary HOME.

    Subprocesses (the CLI, nbclient's kernels, the e2e JupyterLab and Chromium) inherit this environment; the
    temporary HOME and XDG folders catch what other libraries keep there (matplotlib's font cache, IPython's
    history, Chromium's dconf)."""
    root = tmp_path_factory.mktemp("env")
    saved = dict(os.environ)
    home = root / "home"
    home.mkdir()
    os.environ.update(SDXL_NB_CACHE=str(root / "sdxl_nb_cache"), HF_HUB_CACHE=str(root / "hf_hub"),
                      HF_HUB_OFFLINE="1", SDXL_NB_OUTPUT=str(root / "default_output"), SDXL_NB_DEVICE="cpu",
                      SDXL_NB_USER_PRESETS=str(root / "user_presets.json"), HOME=str(home),
                      XDG_CACHE_HOME=str(home / ".cache"), XDG_CONFIG_HOME=str(home / ".config"),
                      XDG_DATA_HOME=str(home / ".local" / "share"))
    for key in ("SDXL_NB_MODEL", "SDXL_NB_PRESETS", "HF_HOME", "SDXL_NB_DTYPE"):
        os.environ.pop(key, None)
    yield root
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def engine(isolated_env):
    from sdxl_nb.backends.local import Engine

    return Engine(device="cpu", max_loaded=2)


@pytest.fixture
def kernel_engine(engine, monkeypatch):
    """The kernel's engine, which the CLI and the API use, is the session's CPU engine (its models loaded once)."""
    import sdxl_nb.backends.local.core as core

    monkeypatch.setattr(core, "_ENGINE", engine)
    return engine


@pytest.fixture
def run(engine, tmp_path):
    """generate() into a fresh folder with the shared engine and small defaults."""
    from sdxl_nb.jobs.generate import generate

    def _run(**fields):
        out = fields.pop("out_dir", tmp_path / "out")
        kwargs = {k: fields.pop(k) for k in ("on_progress", "should_stop", "chunk_size") if k in fields}
        return generate(out_dir=out, engine=engine, **{**SMALL, "seed": 1, **fields}, **kwargs)

    return _run


def pixels(image):
    import numpy as np

    return np.asarray(image.convert("RGB"))


def python_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


PYTHON = sys.executable
