"""Cells of notebooks/08_speed.ipynb: engine profiles (what each job records of them) and the benchmark's ratios."""

from nbformat.v4 import new_code_cell, new_markdown_cell

FILENAME = "08_speed.ipynb"


def cells():
    return [
        new_markdown_cell(
            "# Speed: engine profiles and the benchmark\n\n"
            "How fast a job runs is an engine setting, chosen by profile (presets' `engine_profiles`): the lab's "
            "engine settings, `sdxl_nb.api.configure_engine(NAME)` here, `--engine-profile NAME` on the command "
            "line. Every job records the options it ran with (`env.options`), so an audit knows what ran."),
        new_code_cell(
            "from sdxl_nb.config.presets import load_presets\n\n"
            "for name, profile in load_presets().engine_profiles.items():\n"
            "    print(f'{name:22} {profile.description}')"),
        new_markdown_cell(
            "A profile applies to the jobs that follow; models whose modules it changes reload with it. Options this "
            "machine cannot run are refused in one line and nothing changes: float8 needs an Ada or Hopper GPU "
            "with torchao, so on a CPU the FP8 profile is refused."),
        new_code_cell(
            "import sdxl_nb\n"
            "from sdxl_nb.api import configure_engine\n"
            "from sdxl_nb.errors import InputError\n\n"
            "print(configure_engine('Low memory'))\n"
            "job = sdxl_nb.generate(prompt='a lighthouse', model='tiny-sdxl', width=64, height=64, steps=2, seed=1)\n"
            "print({k: v for k, v in job.record['env']['options'].items() if v})\n"
            "try:\n"
            "    configure_engine('Fastest FP8 (Hopper)')\n"
            "except InputError as refused:\n"
            "    print('refused:', refused)\n"
            "print(configure_engine('Default'))"),
        new_markdown_cell(
            "`sdxl-nb bench` measures speed as ratios taken in one run, contenders interleaved so that drift in the "
            "machine's load hits both alike: what a job through sdxl_nb costs against the bare diffusers call (the "
            "record, the PNG with its metadata, the hashes and fsyncs), a job of several images at one per call "
            "while the writer thread saves behind the next call, and one job with every preset scheduler. The same "
            "functions at tiny settings:"),
        new_code_cell(
            "import pandas as pd\n\n"
            "from sdxl_nb.backends.local import get_engine\n"
            "from sdxl_nb.bench import cpu_checks\n\n"
            "engine = get_engine()\n"
            "small = dict(width=64, height=64, steps=2)\n"
            "overhead = cpu_checks.generate_overhead(engine, repeats=5, **small)\n"
            "sustained = cpu_checks.sustained_throughput(engine, repeats=2, images=4, **small)\n"
            "print(f\"one job: {overhead['overhead_ratio']:.3f}x the bare call; \"\n"
            "      f\"4 images at 1 per call: {sustained['sustained_ratio']:.3f}x\")\n"
            "schedulers = cpu_checks.scheduler_jobs(engine, **small)  # each preset scheduler's own step code runs\n"
            "pd.Series(schedulers['scheduler_job_s_each'], name='seconds, one 64x64 job each')"),
        new_markdown_cell(
            "On a 64 px tiny model these figures mostly show the fixed cost of keeping a record, and they move with "
            "whatever else the machine does (single runs, not a benchmark); on a GPU the denoising dominates. `sdxl-nb bench [--quick] --json FILE` takes every figure (CI runs the quick one); "
            "`sdxl-nb bench --gpu` adds the full-size SDXL figures: the speed recipe (fp16, bf16, channels-last, "
            "fused QKV, compile, CUDA graphs, FP8 with its PSNR against bf16), the \"Fastest (CUDA graphs)\" profile "
            "per job and at batch 1, 4 and 8, and the refiner, hires and LoRA costs per job. "
            "`scripts/gpu-bench.sh` is the one prepared run for a lent GPU; the figures and how they were taken "
            "are in docs/PERFORMANCE.md."),
    ]
