"""Pure modules import without torch/diffusers (checked in a fresh interpreter)."""

import subprocess

from tests.conftest import PYTHON, python_env

PURE = ["sdxl_nb", "sdxl_nb.presets", "sdxl_nb.request", "sdxl_nb.registry", "sdxl_nb.naming", "sdxl_nb.store",
        "sdxl_nb.joblog", "sdxl_nb.events", "sdxl_nb.metadata", "sdxl_nb.record", "sdxl_nb.api", "sdxl_nb.cli",
        "sdxl_nb.tiny", "sdxl_nb.errors", "sdxl_nb.lint", "sdxl_nb.memory", "sdxl_nb.recovery", "sdxl_nb.secrets_mask",
        "sdxl_nb.preflight", "sdxl_nb.prompt_window"]


def test_pure_modules_do_not_import_torch():
    code = ("import importlib, sys\n"
            f"for name in {PURE!r}: importlib.import_module(name)\n"
            "from sdxl_nb.api import prepare\n"
            "from sdxl_nb.request import GenerationRequest\n"
            "prepare(GenerationRequest(prompt='x', seed=1))\n"
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'ipywidgets') if m in sys.modules))")
    result = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=python_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
