"""Cells of notebooks/01_generate.ipynb: the lab, then the same generation through the Python API."""

from nbformat.v4 import new_code_cell, new_markdown_cell

FILENAME = "01_generate.ipynb"


def cells():
    return [
        new_markdown_cell(
            "# sdxl_nb: the lab\n\n"
            "Run the cell below for the whole lab: pick a model (nothing is loaded until you press **Load** or "
            "**Generate**), a style (its negative prompt appears in the negative box: what you see is what is "
            "sent), a scheduler, size, steps, cfg, batch and seed, then **Generate**. Jobs run in the background, "
            "one at a time, so the notebook stays usable; the **Queue** tab lists them (cancel waiting ones), "
            "**Stop** ends the running one and keeps its finished images, and the **Presets** tab saves your own "
            "styles. Every job is one line in `jobs.log` in the output folder.\n\n"
            "With no real SDXL model in the local Hugging Face cache the lab uses the embedded `tiny-sdxl` model: "
            "the SDXL architecture with random weights, so images are noise, but every step is the real one.\n\n"
            "**The lab shows *Error displaying widget: model not found*?** That happens after reloading the page "
            "or restarting the kernel: the widgets lived in the kernel's memory and the page lost them. Run the "
            "cell below again (click it, then Shift+Enter) to get the lab back. Nothing is lost: every image and "
            "its `jobs.log` line are in the output folder, and jobs still queued in a running kernel carry on."),
        new_code_cell(
            "import sdxl_nb\n\n"
            "sdxl_nb.lab()"),
        new_markdown_cell(
            "## The same generation through the Python API\n\n"
            "Every button of the lab calls the library; here is a generation without widgets. "
            "`prepare` shows what will run, before running it."),
        new_code_cell(
            "from IPython.display import display\n\n"
            "from sdxl_nb.api import prepare\n\n"
            "request = sdxl_nb.GenerationRequest(prompt='a lighthouse on a cliff at dusk', style='Cinematic',\n"
            "                                    model=sdxl_nb.default_model(), batch=2, seed=7)\n"
            "resolved = prepare(request)\n"
            "print('styled prompt:     ', resolved.styled_prompt)\n"
            "print('effective negative:', resolved.effective_negative_prompt)\n"
            "print('steps/cfg/size:    ', resolved.steps, resolved.cfg, f'{resolved.width}x{resolved.height}')\n"
            "print('seeds:             ', resolved.seeds)"),
        new_code_cell(
            "result = sdxl_nb.generate(request)\n"
            "for image, seed in zip(result.images, result.seeds):\n"
            "    print('seed', seed)\n"
            "    display(image)\n"
            "print('saved:', *[p.name for p in result.paths], sep='\\n  ')\n"
            "assert result.record['status'] == 'ok' and len(result.images) == 2"),
        new_markdown_cell(
            "## Base + refiner\n\n"
            "A refiner finishes the base model's last steps from a switch point (A1111's *Refiner switch at*). "
            "The embedded `tiny-sdxl-refiner` pairs with `tiny-sdxl`: it shares its VAE and second text encoder "
            "(no extra memory for them). Switch 1 means the refiner does not run."),
        new_code_cell(
            "import numpy as np\n\n"
            "tiny = dict(model='tiny-sdxl', prompt='a lighthouse', width=64, height=64, steps=4, seed=3)\n"
            "alone = sdxl_nb.generate(**tiny)\n"
            "refined = sdxl_nb.generate(**tiny, refiner='tiny-sdxl-refiner', refiner_switch=0.5)\n"
            "print(refined.record['refiner'])\n"
            "print([e for e in refined.record['events'] if e.startswith('refiner')])\n"
            "display(alone.images[0], refined.images[0])\n"
            "assert not np.array_equal(np.asarray(alone.images[0]), np.asarray(refined.images[0]))"),
    ]
