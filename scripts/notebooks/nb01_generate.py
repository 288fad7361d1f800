"""Cells of notebooks/01_generate.ipynb."""

from nbformat.v4 import new_code_cell, new_markdown_cell

FILENAME = "01_generate.ipynb"


def cells():
    return [
        new_markdown_cell(
            "# sdxl_nb: generate\n\n"
            "Generate with the Python API. With no real SDXL model in the local Hugging Face cache the lab uses "
            "the embedded `tiny-sdxl` model: the SDXL architecture with random weights, so images are noise, "
            "but every step (styles, seeds, PNG metadata, jobs.log) is the real one."),
        new_code_cell(
            "import json\n\n"
            "from IPython.display import display\n\n"
            "import sdxl_nb\n"
            "from sdxl_nb.api import prepare\n\n"
            "model = sdxl_nb.default_model()\n"
            "print('model:', model)"),
        new_markdown_cell("What will run, before running it: the style's prompt and negative, and where each default came from."),
        new_code_cell(
            "request = sdxl_nb.GenerationRequest(prompt='a lighthouse on a cliff at dusk', style='Cinematic',\n"
            "                                    model=model, batch=2, seed=7)\n"
            "resolved = prepare(request)\n"
            "print('styled prompt:     ', resolved.styled_prompt)\n"
            "print('effective negative:', resolved.effective_negative_prompt)\n"
            "print('steps/cfg/size:    ', resolved.steps, resolved.cfg, f'{resolved.width}x{resolved.height}')\n"
            "print('seeds:             ', resolved.seeds)\n"
            "print('notes:             ', '; '.join(resolved.notes))"),
        new_code_cell(
            "result = sdxl_nb.generate(request)\n"
            "for image, seed in zip(result.images, result.seeds):\n"
            "    print('seed', seed)\n"
            "    display(image)\n"
            "print('saved:', *[p.name for p in result.paths], sep='\\n  ')"),
        new_markdown_cell("The job's record, exactly as appended to `jobs.log`:"),
        new_code_cell(
            "record = result.record\n"
            "print(json.dumps({k: record[k] for k in ('job_id', 'status', 'model', 'scheduler', 'seeds', 'timings')},\n"
            "                 indent=1, default=str)[:2000])\n"
            "assert record['status'] == 'ok' and len(result.images) == 2"),
    ]
