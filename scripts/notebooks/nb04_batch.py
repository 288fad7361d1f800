"""Cells of notebooks/04_batch.ipynb."""

from nbformat.v4 import new_code_cell, new_markdown_cell

FILENAME = "04_batch.ipynb"


def cells():
    return [
        new_markdown_cell(
            "# sdxl_nb: scenario batches\n\n"
            "A scenarios file is a JSON list of named requests: `name`, `prompt`, optional `negative` and `seed`, "
            "and any other request field (`style`, `steps`, `width`, `batch`, `init_image`...). Each scenario is "
            "one job in `jobs.log`, tagged with the batch and scenario name, so a re-run skips what is done and "
            "runs what failed or changed."),
        new_code_cell(
            "import json\n"
            "from pathlib import Path\n\n"
            "from IPython.display import display\n\n"
            "from sdxl_nb.api import default_output_dir\n"
            "from sdxl_nb.jobs.batch import run_batch, tqdm_progress\n"
            "from sdxl_nb.record.joblog import read_records\n\n"
            "small = {'width': 64, 'height': 64, 'steps': 2}  # the tiny demo model; use real sizes with SDXL\n"
            "scenarios = [\n"
            "    {'name': 'lighthouse', 'prompt': 'a lighthouse at dusk', 'seed': 7, **small},\n"
            "    {'name': 'fox', 'prompt': 'a red fox in snow', 'negative': 'blurry', 'seed': 11, 'batch': 2, **small},\n"
            "    {'name': 'city', 'prompt': 'a city street at night', 'style': 'Cinematic', 'seed': 3, **small},\n"
            "]\n"
            "path = Path('scenarios_demo.json')\n"
            "path.write_text(json.dumps(scenarios, indent=1), encoding='utf-8')\n"
            "print(path.read_text(encoding='utf-8')[:300])"),
        new_markdown_cell("Run it: a progress bar per scenario; a failing scenario is recorded and the batch goes on."),
        new_code_cell(
            "on_scenario, close_bar = tqdm_progress(len(scenarios), desc='scenarios_demo')\n"
            "try:\n"
            "    summary = run_batch(path, on_scenario=on_scenario)\n"
            "finally:\n"
            "    close_bar()\n"
            "print(*summary.lines(), sep='\\n')"),
        new_markdown_cell("Run it again: every scenario is already done (per `jobs.log`), so nothing is generated."),
        new_code_cell(
            "again = run_batch(path)\n"
            "print(*again.lines(), sep='\\n')\n"
            "assert again.count('skipped') == len(scenarios)"),
        new_markdown_cell("The batch's records, found by their `scenario` tag, and their images:"),
        new_code_cell(
            "folder = default_output_dir()\n"
            "records = [r for r in read_records(folder / 'jobs.log')\n"
            "           if r.get('scenario', {}).get('batch_id') == 'scenarios_demo']\n"
            "for record in records:\n"
            "    print(record['scenario']['name'], record['status'], record['seeds'],\n"
            "          [image['path'] for image in record['images']])\n"
            "from PIL import Image\n"
            "display(*[Image.open(folder / image['path']) for image in records[0]['images']])\n"
            "assert summary.ok and len(records) == len(scenarios)"),
        new_markdown_cell(
            "## Scaling out\n\n"
            "- Several processes, one GPU each (a DGX): `accelerate launch --multi_gpu --num_processes 8 -m sdxl_nb "
            "batch scenarios.json` splits the scenarios across the processes; every record names its rank and "
            "device. See `docs/SCALING.md` for multi-node use.\n"
            "- Several GPUs inside this kernel: `sdxl_nb.backends.replicas.enable_replicas('all')` loads one copy per GPU "
            "and splits each job's batch across them (same seeds, same order).\n"
            "- A ComfyUI server: `run_batch(path, engine=sdxl_nb.backends.comfy.backend.ComfyBackend("
            "'http://host:8188', checkpoint='sd_xl_base_1.0.safetensors'))`.\n"
            "- Rented GPUs: `sdxl_nb.cloud.lambda_cloud.comfy_on_lambda(...)` launches an instance, yields its "
            "ComfyUI backend and always terminates it."),
    ]
