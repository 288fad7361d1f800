"""The lab's library modules stay pure (no torch, no widgets); `import sdxl_nb` does not import ipywidgets."""

import subprocess

from tests.conftest import PYTHON, python_env

LAB_LIBRARY = ["sdxl_nb.jobs.queue", "sdxl_nb.record.history", "sdxl_nb.request.memory", "sdxl_nb.request.form", "sdxl_nb.config.user_presets"]


def test_lab_library_modules_import_without_torch_or_widgets():
    code = ("import importlib, sys\n"
            f"for name in {LAB_LIBRARY!r}: importlib.import_module(name)\n"
            "import sdxl_nb\n"
            "assert callable(sdxl_nb.lab)\n"
            "print(sorted(m for m in ('torch', 'diffusers', 'ipywidgets') if m in sys.modules))")
    result = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=python_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
