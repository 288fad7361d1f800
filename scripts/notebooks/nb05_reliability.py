"""Cells of notebooks/05_reliability.ipynb."""

from nbformat.v4 import new_code_cell, new_markdown_cell

FILENAME = "05_reliability.ipynb"


def cells():
    return [
        new_markdown_cell(
            "# sdxl_nb: reliability\n\n"
            "What the lab tells you before a run (quality lint, prompts longer than CLIP reads, memory), how it "
            "survives running out of memory, and how to audit an output folder after a crash."),
        new_code_cell(
            "import sdxl_nb\n"
            "from sdxl_nb.api import preflight\n"
            "from sdxl_nb.backends.local import get_engine\n\n"
            "engine = get_engine()\n"
            "engine.auto_tune = True  # the lab's default: on out of memory, retry lighter settings\n"
            "model = sdxl_nb.default_model()\n"
            "print('model:', model, '| device:', engine.device)"),
        new_markdown_cell(
            "## Before the run\n\n"
            "`preflight` validates the request and lists its warnings without running anything. Each warning "
            "names the setting to use instead."),
        new_code_cell(
            "request = sdxl_nb.GenerationRequest(prompt='a lighthouse on a cliff at dusk, ' * 12, cfg=12,\n"
            "                                    model=model, seed=7)\n"
            "check = preflight(request, engine=engine)\n"
            "for warning in check.warnings:\n"
            "    print('warning:', warning)"),
        new_markdown_cell(
            "## Memory\n\n"
            "The estimate uses the loaded model's real parameter bytes, the size, the images at once and the "
            "offload mode; once this output folder's `jobs.log` holds three or more jobs of the model on this "
            "device, it is calibrated from their recorded peaks. Here: SDXL base in float16 on a GPU with "
            "12 GiB free."),
        new_code_cell(
            "from sdxl_nb.request.memory import GIB, MemoryRequest, advise, nominal_component_bytes\n\n"
            "sdxl = MemoryRequest(component_bytes=nominal_component_bytes('float16'), dtype='float16',\n"
            "                     width=1024, height=1024, images_at_once=4, cfg=7)\n"
            "advice = advise(sdxl, free_bytes=12 * GIB)\n"
            "print(advice.message)"),
        new_markdown_cell(
            "## Out of memory\n\n"
            "With auto-tuning on, an out-of-memory error frees the cache and retries: half the images at once "
            "down to one, then VAE slicing and tiling, then model CPU offload. Every step lands in the job's "
            "`events`. The engine's test hook simulates the error here (the tiny model never runs out)."),
        new_code_cell(
            "import torch\n\n"
            "failures = iter([True, True])\n\n"
            "def simulate_oom(stage, indices, **context):\n"
            "    if stage == 'denoise' and next(failures, False):\n"
            "        raise torch.OutOfMemoryError('CUDA out of memory (simulated)')\n\n"
            "engine.fault_hook = simulate_oom\n"
            "try:\n"
            "    result = sdxl_nb.generate(prompt='a lighthouse at dusk', model=model, batch=4, seed=7,\n"
            "                              width=128, height=128, steps=4)\n"
            "finally:\n"
            "    engine.fault_hook = None\n"
            "print('status:', result.status, '| images:', len(result.paths))\n"
            "print(*[e for e in result.record['events'] if 'out of memory' in e], sep='\\n')\n"
            "print('recorded for re-runs:', result.record['auto_tune'])"),
        new_markdown_cell(
            "## After a crash\n\n"
            "Each job keeps a locked marker while it runs. The next job in the folder records a job whose "
            "process died (status `interrupted`, with the images it had saved), removes leftover temporary "
            "files and moves a torn `jobs.log` tail aside, and says so in `logs/app_events.log`. "
            "`verify_folder` (or `sdxl-nb verify`) audits the folder."),
        new_code_cell(
            "from sdxl_nb.api import default_output_dir\n"
            "from sdxl_nb.record.recovery import recover, verify_folder\n\n"
            "folder = default_output_dir()\n"
            "print('repaired:', recover(folder).lines() or 'nothing to repair')\n"
            "check = verify_folder(folder)\n"
            "print('folder ok:', check.ok)\n"
            "assert check.ok"),
    ]
