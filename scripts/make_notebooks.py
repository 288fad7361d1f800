"""Writes the notebooks in notebooks/ from their cell sources (kept here so diffs stay readable)."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def generate_notebook():
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


BUILDERS = {"01_generate.ipynb": generate_notebook}


def main(names: list[str]) -> None:
    for name, builder in BUILDERS.items():
        if names and name not in names:
            continue
        notebook = new_notebook(cells=builder())
        for number, cell in enumerate(notebook.cells):
            cell["id"] = f"cell-{number:02d}"  # stable ids keep regenerated notebooks diff-free
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.validate(notebook)
        nbformat.write(notebook, NOTEBOOKS / name)
        print("wrote", NOTEBOOKS / name)


if __name__ == "__main__":
    main(sys.argv[1:])
