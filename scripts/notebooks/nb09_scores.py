"""Cells of notebooks/09_scores.ipynb: a sweep scored (CLIP score, aesthetic), ranked, compared in pairs, exported."""

from nbformat.v4 import new_code_cell, new_markdown_cell

FILENAME = "09_scores.ipynb"


def cells():
    return [
        new_markdown_cell(
            "# Scores: rank a sweep by how well its images match the prompt\n\n"
            "Every image in the record can be scored with local models: the **CLIP score** (how well an image "
            "matches its prompt: 100 x the cosine of CLIP's image and text embeddings, as torchmetrics defines it) "
            "and the LAION **aesthetic** predictor (an MLP on CLIP ViT-L/14 image embeddings). Scores go to "
            "`scores.jsonl` beside `jobs.log`, keyed by the image's sha256 and the scorer's weights, and "
            "`load_jobs` shows them as columns. This notebook uses the tiny twins (`tiny-clip` and its aesthetic "
            "MLP: random weights, so the numbers mean nothing); with the real `openai/clip-vit-large-patch14` in "
            "the Hugging Face cache and `SDXL_NB_AESTHETIC` naming the predictor's file, leave `model` out."),
        new_code_cell(
            "import sdxl_nb\n"
            "from sdxl_nb.jobs.sweep import axis, run_sweep\n\n"
            "sweep = run_sweep(sdxl_nb.GenerationRequest(prompt='a (red:1.2) lighthouse on a cliff BREAK at dusk',\n"
            "                                            model='tiny-sdxl', width=64, height=64, steps=2, seed=1),\n"
            "                  x=axis('cfg', [3, 8]), y=axis('seed', [1, 2]))\n"
            "folder = sweep.grid_path.parent\n"
            "print(sweep.status, len(sweep.results), 'cells in', folder)"),
        new_markdown_cell(
            "Score the folder: each image once per scorer and weights (a second run skips what is scored). The "
            "CLIP score reads the prompt CLIP read: weights, `BREAK` and LoRA tags taken out. The GPU is used when "
            "there is one. The command line does the same: `sdxl-nb score DIR --scorer clip --scorer aesthetic`."),
        new_code_cell(
            "from sdxl_nb.analysis import load_jobs, score\n\n"
            "print(score(folder, ['clip', 'aesthetic'], model='tiny-clip', progress=False))\n"
            "print(score(folder, ['clip', 'aesthetic'], model='tiny-clip', progress=False))\n"
            "frame = load_jobs(folder)\n"
            "cells = frame[frame['job_id'].isin({job.record['job_id'] for job in sweep.results.values()})]\n"
            "cells[['cfg', 'seed', 'clip_score', 'aesthetic_score']]"),
        new_markdown_cell(
            "**Rank** the sweep's settings by a metric, and **compare** them in pairs: images that share a seed and "
            "differ only in cfg are paired, so the seed's own effect cancels out. The interval is a seeded "
            "bootstrap of the mean difference."),
        new_code_cell(
            "from sdxl_nb.analysis import compare, rank\n\n"
            "display(rank(cells, by='cfg', metric='clip_score'))\n"
            "paired = compare(cells, by='cfg', pair_on='seed', metric='clip_score')\n"
            "display(paired.pairs, paired.summary)\n"
            "display(paired.plot().figure)"),
        new_markdown_cell("The sweep's grid with each cell's score under it:"),
        new_code_cell(
            "from sdxl_nb.analysis import sweep_grid\n\n"
            "sweep_grid(folder, sweep.plan.id, metric='clip_score', frame=cells)"),
        new_markdown_cell(
            "Two groups of images can also be compared as sets: **CMMD** (Jayasumana et al. 2024) on the same "
            "CLIP embeddings, and FID/KID through torchmetrics when torch-fidelity's Inception weights are on this "
            "machine (`SDXL_NB_INCEPTION`; they are never downloaded, so here they are refused in one line)."),
        new_code_cell(
            "from sdxl_nb.analysis import cmmd, fid_kid\n"
            "from sdxl_nb.errors import InputError\n\n"
            "low, high = cells[cells['cfg'] == 3], cells[cells['cfg'] == 8]\n"
            "print('CMMD cfg 3 vs 8:', cmmd(low, high, model='tiny-clip'))\n"
            "try:\n"
            "    print(fid_kid(low, high))\n"
            "except InputError as refused:\n"
            "    print('refused:', refused)"),
        new_markdown_cell(
            "**Export** the run to share it: one row per image with its settings, scores and PNG bytes, as Parquet "
            "(`sdxl-nb export DIR runs.parquet`) or a Hugging Face `datasets` folder (`--to hf`)."),
        new_code_cell(
            "import tempfile\n"
            "from pathlib import Path\n\n"
            "import pandas as pd\n\n"
            "from sdxl_nb.analysis import export\n\n"
            "out = export(folder, Path(tempfile.mkdtemp()) / 'runs.parquet')\n"
            "table = pd.read_parquet(out)\n"
            "print(len(table), 'rows;', [c for c in table.columns if c.endswith('_score')], 'image bytes:',\n"
            "      table['image'].map(len).sum())"),
    ]
