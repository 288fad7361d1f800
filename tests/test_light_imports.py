"""Pure modules import without torch/diffusers (checked in a fresh interpreter)."""

import subprocess

from tests.conftest import PYTHON, python_env

PURE = ["sdxl_nb", "sdxl_nb.config.presets", "sdxl_nb.request.resolve", "sdxl_nb.config.registry", "sdxl_nb.record.naming", "sdxl_nb.record.store",
        "sdxl_nb.record.joblog", "sdxl_nb.record.events", "sdxl_nb.record.metadata", "sdxl_nb.record.job_record", "sdxl_nb.jobs.pipeline", "sdxl_nb.cli",
        "sdxl_nb.config.tiny", "sdxl_nb.errors", "sdxl_nb.request.lint", "sdxl_nb.request.memory", "sdxl_nb.record.recovery", "sdxl_nb.record.secrets",
        "sdxl_nb.request.preflight", "sdxl_nb.request.prompt_syntax", "sdxl_nb.request.networks", "sdxl_nb.settings",
        "sdxl_nb.record.config_codec", "sdxl_nb.config.loras", "sdxl_nb.config.embeddings", "sdxl_nb.config.tiny_lora"]


def test_pure_modules_do_not_import_torch():
    code = ("import importlib, sys\n"
            f"for name in {PURE!r}: importlib.import_module(name)\n"
            "from sdxl_nb.request.prepare import prepare\n"
            "from sdxl_nb.request.resolve import GenerationRequest\n"
            "prepare(GenerationRequest(prompt='x', seed=1))\n"
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'ipywidgets') if m in sys.modules))")
    result = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=python_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
