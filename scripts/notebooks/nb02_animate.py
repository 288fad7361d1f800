"""Cells of notebooks/02_animate.ipynb."""

from nbformat.v4 import new_code_cell, new_markdown_cell

FILENAME = "02_animate.ipynb"


def cells():
    return [
        new_markdown_cell(
            "# sdxl_nb: animate and sweep\n\n"
            "Short frame sequences that look like motion, made reproducibly: a **seed walk** (frame i uses seed + i "
            "and a motion phrase), **slerp** (the initial noise travels between two seeds) and **prompt travel** "
            "(the text conditioning travels between two prompts). Each animation is one `animate` record in "
            "`jobs.log`, from which every frame can be re-run exactly. Then a parameter **sweep**: an X/Y grid "
            "with one recorded job per cell.\n\n"
            "With the embedded `tiny-sdxl` model the frames are noise, but every step is the real one."),
        new_code_cell(
            "import json\n\n"
            "from IPython.display import Image as ShowFile\n"
            "from IPython.display import display\n\n"
            "import sdxl_nb\n"
            "from sdxl_nb.jobs.animate import AnimationRequest, animate, check_rerun, prepare_animation\n"
            "from sdxl_nb.jobs.sweep import axis, rebuild_grid, run_sweep\n\n"
            "print('model:', sdxl_nb.default_model())"),
        new_markdown_cell("What will run, before running it: each frame's seed and prompt (the motion phrases come "
                          "from `presets.json`; `variation` sets how many each frame gets)."),
        new_code_cell(
            "request = AnimationRequest(prompt='a lighthouse on a cliff at dusk', mode='seed-walk', frames=6, seed=7,\n"
            "                           style='Cinematic', variation=0.3, fps=6, ping_pong=True)\n"
            "plan = prepare_animation(request)\n"
            "for frame in plan.frames:\n"
            "    print(frame.index + 1, frame.seed, frame.prompt)\n"
            "print('playback order:', plan.order)"),
        new_code_cell(
            "walk = animate(request)\n"
            "display(walk.grid)\n"
            "display(ShowFile(filename=str(walk.gif_path)))\n"
            "print('saved:', *[p.name for p in [*walk.paths, walk.grid_path, walk.gif_path, walk.webp_path]], "
            "sep='\\n  ')"),
        new_markdown_cell("**Slerp**: every frame starts from seed 7's noise turned toward seed 8's by t; the first "
                          "and last frames are exactly the plain images of those seeds."),
        new_code_cell(
            "slerp = animate(prompt='a lighthouse on a cliff at dusk', mode='slerp', frames=5, seed=7, seed_end=8,\n"
            "                schedule='ease-in-out', fps=5)\n"
            "display(slerp.grid)\n"
            "display(ShowFile(filename=str(slerp.gif_path)))"),
        new_markdown_cell("**Prompt travel**: fixed noise, the conditioning of both SDXL text encoders (and the "
                          "pooled embedding) blended from one prompt to the other."),
        new_code_cell(
            "travel = animate(prompt='a lighthouse at dawn', prompt_end='a lighthouse in a storm', mode='prompt-travel',\n"
            "                 frames=4, seed=7)\n"
            "display(travel.grid)\n"
            "display(ShowFile(filename=str(travel.gif_path)))"),
        new_markdown_cell("The record of the slerp job, and every frame re-run from that record alone:"),
        new_code_cell(
            "record = slerp.record\n"
            "print(json.dumps(record['animation'], indent=1))\n"
            "print(json.dumps(record['frames'][1], indent=1))\n"
            "checks = check_rerun(record, slerp.grid_path.parent)\n"
            "print('frames identical on re-run:', [c['identical'] for c in checks])\n"
            "assert all(c['identical'] for c in checks)"),
        new_markdown_cell("A **sweep**: cfg across, scheduler down, one job per cell (each tagged with the sweep id "
                          "in `jobs.log`), and the labelled grid, rebuilt afterwards from `jobs.log` alone."),
        new_code_cell(
            "sweep = run_sweep(sdxl_nb.GenerationRequest(prompt='a lighthouse on a cliff at dusk', seed=3, steps=2),\n"
            "                  x=axis('cfg', [2, 6]), y=axis('scheduler', ['Euler', 'Euler a']))\n"
            "display(sweep.grid)\n"
            "rebuilt = rebuild_grid(sweep.grid_path.parent, sweep.plan.id)\n"
            "print(sweep.status, sweep.plan.id, sweep.grid_path.name, 'rebuilt identical:',\n"
            "      rebuilt.tobytes() == sweep.grid.tobytes())"),
        new_markdown_cell("The same, as panels (they run in the background; Stop keeps the finished frames or cells). "
                          "If a panel shows *Error displaying widget: model not found* after a page reload or a "
                          "kernel restart, run its cell again: the saved frames and grids stay in the output folder."),
        new_code_cell(
            "from sdxl_nb.ui.animate_panel import animate_panel\n"
            "from sdxl_nb.ui.sweep_panel import sweep_panel\n\n"
            "display(animate_panel())\n"
            "display(sweep_panel())"),
    ]
