"""A job's script in the lab: put in the notebook's next cell where the kernel can, and always shown to copy."""

from __future__ import annotations

import ipywidgets as w


def to_next_cell(text: str) -> bool:
    """Ask the notebook to put `text` in the next cell (IPython's set_next_input); False outside a kernel."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or not hasattr(shell, "set_next_input") or not hasattr(shell, "kernel"):
        return False
    shell.set_next_input(text, replace=False)
    return True


def code_box(text: str) -> list[w.Widget]:
    """The script in a box to select and copy, with how to run it."""
    hint = w.HTML("<small>Click in the box, select all (Ctrl+A / Cmd+A) and copy. It needs diffusers, torch, "
                  "transformers and PIL, not sdxl_nb: <code>python job.py OUTPUT_FOLDER</code></small>")
    area = w.Textarea(value=text, layout=w.Layout(width="100%", height="360px"))
    area.add_class("sdxl-code")
    return [hint, area]
