"""Cells of notebooks/03_audit.ipynb."""

from nbformat.v4 import new_code_cell, new_markdown_cell

FILENAME = "03_audit.ipynb"


def cells():
    return [
        new_markdown_cell(
            "# sdxl_nb: analyse and audit jobs.log\n\n"
            "Every job is one line of `jobs.log`. Here the log becomes a pandas table (one row per image), "
            "gets summarised and plotted, and is audited: are the files intact, do re-runs from the records "
            "alone give the same pixels, and what changed since (environment, presets).\n\n"
            "So that this runs anywhere, it first makes a few small jobs with the embedded `tiny-sdxl` model."),
        new_code_cell(
            "%matplotlib inline\n"
            "import pandas as pd\n"
            "from IPython.display import display\n\n"
            "import sdxl_nb\n"
            "from sdxl_nb.api import default_output_dir\n\n"
            "out = default_output_dir()\n"
            "small = dict(model='tiny-sdxl', steps=4)\n"
            "results = [\n"
            "    sdxl_nb.generate(prompt='a lighthouse at dusk', scheduler='Euler', width=64, height=64, batch=2, seed=1, **small),\n"
            "    sdxl_nb.generate(prompt='a fox in the snow', style='Cinematic', width=96, height=64, seed=2, **small),\n"
            "    sdxl_nb.generate(prompt='a quiet harbour', scheduler='UniPC', width=64, height=96, seed=3, **small),\n"
            "]\n"
            "results.append(sdxl_nb.generate(prompt='the lighthouse, repainted', init_image=str(results[0].paths[0]),\n"
            "                                strength=0.5, seed=4, **small))\n"
            "our_jobs = [r.record['job_id'] for r in results]\n"
            "print('output folder:', out.resolve())"),
        new_markdown_cell(
            "## The log as a table\n\n"
            "`load_jobs` takes one or several `jobs.log` files or output folders. Lines it cannot read (a torn "
            "write, hand edits) are skipped and listed in `df.attrs['problems']`; they never stop the load."),
        new_code_cell(
            "from sdxl_nb.analysis import load_jobs, load_problems\n\n"
            "df = load_jobs(out)\n"
            "print(len(df), 'images in', df['job'].nunique(), 'jobs;', len(load_problems(df)), 'unreadable lines')\n"
            "df[['job_id', 'mode', 'status', 'model_id', 'scheduler_name', 'style_name', 'width', 'height', 'steps',\n"
            "    'seed', 'image_path', 'timings_generate_s', 's_per_step']].tail(6)"),
        new_markdown_cell("## Summaries, prompt search, duplicate settings"),
        new_code_cell(
            "from sdxl_nb.analysis import duplicate_settings, search_prompts, summarize\n\n"
            "display(summarize(df, 'scheduler'))\n"
            "display(summarize(df, ['model', 'resolution']))\n"
            "search_prompts(df, 'lighthouse')[['job_id', 'mode', 'prompt', 'styled_prompt', 'seed']]"),
        new_code_cell(
            "dupes = duplicate_settings(df)\n"
            "print(len(dupes), 'images were generated more than once with identical settings and seed')\n"
            "dupes[['duplicate_group', 'job_id', 'seed', 'same_image', 'image_path']].head()"),
        new_markdown_cell("## Plots"),
        new_code_cell(
            "from sdxl_nb.analysis import jobs_over_time_plot, peak_memory_plot, step_time_plot, thumbnail_grid\n\n"
            "display(step_time_plot(df).figure)\n"
            "display(peak_memory_plot(df).figure)\n"
            "display(jobs_over_time_plot(df, freq='h').figure)\n"
            "display(thumbnail_grid(df[df['job_id'].isin(our_jobs)], columns=5))"),
        new_markdown_cell(
            "## Integrity\n\n"
            "Every file a record names must exist with its recorded sha256; files in the output folder that no "
            "record names, and temporary files left by an interrupted save, are listed too."),
        new_code_cell(
            "from sdxl_nb.analysis import read_logged_records\n"
            "from sdxl_nb.audit import check_integrity\n\n"
            "records, line_problems = read_logged_records(out)\n"
            "integrity = check_integrity(records)\n"
            "print('intact' if integrity.ok else '\\n'.join(integrity.problems()))\n"
            "integrity.files[['job_id', 'role', 'path', 'state']].tail(6)"),
        new_markdown_cell(
            "## Re-run from the records alone\n\n"
            "Each job is rebuilt from its record (the recorded styled prompt and negative, scheduler class and "
            "full config, seeds, chunking; init images checked by sha256), regenerated, and compared pixel by "
            "pixel: **bit-exact**, **close** (PSNR >= 40 dB and no pixel off by more than 8 levels) or "
            "**diverged**. Environment differences are flagged before running."),
        new_code_cell(
            "from sdxl_nb.audit import rerun_jobs, select_for_rerun\n"
            "from sdxl_nb.backends.local import get_engine\n\n"
            "engine = get_engine()\n"
            "table = rerun_jobs(select_for_rerun(records, job_ids=our_jobs), engine)\n"
            "display(table[['job_id', 'mode', 'image_index', 'seed', 'verdict', 'max_abs_diff', 'psnr_db', 'drift', 'note']])\n"
            "assert (table['verdict'] == 'bit-exact').all()"),
        new_markdown_cell(
            "## Drift\n\n"
            "Jobs recorded under another torch/diffusers/GPU/dtype/attention setting may not re-run bit-exact; "
            "styles and scheduler presets edited since a job keep working for re-runs (the record holds what "
            "ran), but a new job with the same names would differ."),
        new_code_cell(
            "from sdxl_nb.audit import environment_drift, preset_drift\n"
            "from sdxl_nb.audit.drift import engine_environment\n\n"
            "display(environment_drift(records, engine_environment(engine)))\n"
            "preset_drift(records)"),
        new_markdown_cell(
            "The same audit from a terminal: `sdxl-nb audit OUTPUT_FOLDER --rerun 5` (or `--rerun all`, "
            "`--json`); it exits 0 when everything checked is intact and bit-exact, 1 when something is not."),
    ]
