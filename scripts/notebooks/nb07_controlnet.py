"""Cells of notebooks/07_controlnet.ipynb: ControlNet with the embedded tiny-sdxl-controlnet (canny, several units)."""

from nbformat.v4 import new_code_cell, new_markdown_cell

FILENAME = "07_controlnet.ipynb"


def cells():
    return [
        new_markdown_cell(
            "# ControlNet\n\n"
            "A ControlNet guides the composition with a control image. ControlNets are found in the HF cache and in "
            "the folders of `SDXL_NB_CONTROLNETS`; the embedded `tiny-sdxl-controlnet` fits the demo model "
            "`tiny-sdxl` and is built on first use. The preprocessor turns the control image into the map the "
            "ControlNet reads: `canny` edges (as A1111's canny: `cv2.Canny`), `none` (the image is the map), or an "
            "annotator whose weights are in `SDXL_NB_ANNOTATORS`."),
        new_code_cell(
            "import tempfile\n\n"
            "import numpy as np\n"
            "from IPython.display import display\n"
            "from PIL import Image, ImageDraw\n\n"
            "import sdxl_nb\n"
            "from sdxl_nb.api import control_map, controlnet_listing\n\n"
            "for row in controlnet_listing():\n"
            "    print(row['name'], row['short_hash'], row['source'])\n"
            "control = f'{tempfile.mkdtemp()}/circle.png'\n"
            "image = Image.new('RGB', (64, 64), 'white')\n"
            "ImageDraw.Draw(image).ellipse((12, 12, 52, 52), fill='black')\n"
            "image.save(control)\n"
            "edges = control_map(control, 'canny', {'low_threshold': 100, 'high_threshold': 200}, (64, 64))\n"
            "display(image, edges)  # what the lab's Show map shows before a run"),
        new_markdown_cell(
            "One unit is a dict: model, image, preprocessor, weight (0-2) and the part of the steps it guides "
            "(start, end). At weight 0 the pixels are those of a job without a ControlNet."),
        new_code_cell(
            "small = dict(model='tiny-sdxl', width=64, height=64, steps=2, seed=3)\n"
            "canny = {'model': 'tiny-sdxl-controlnet', 'image': control, 'preprocessor': 'canny'}\n"
            "plain = sdxl_nb.generate(prompt='a moon', **small)\n"
            "guided = sdxl_nb.generate(prompt='a moon', controlnets=[canny], **small)\n"
            "zero = sdxl_nb.generate(prompt='a moon', controlnets=[{**canny, 'weight': 0}], **small)\n"
            "same = lambda a, b: np.array_equal(np.asarray(a.images[0]), np.asarray(b.images[0]))\n"
            "print('ControlNet changes pixels:', not same(plain, guided), '| weight 0 == none:', same(plain, zero))\n"
            "display(plain.images[0], guided.images[0])\n"
            "assert same(plain, zero) and not same(plain, guided)"),
        new_markdown_cell(
            "Several units at once, each with its own part of the steps. The record keeps each unit (model and "
            "control image hashes, preprocessor settings, weight, start, end) and the map it read, saved beside the "
            "images; the PNG carries A1111's `ControlNet N` parameters."),
        new_code_cell(
            "two = sdxl_nb.generate(prompt='a moon', **small, controlnets=[\n"
            "    {**canny, 'end': 0.5},\n"
            "    {**canny, 'preprocessor': 'none', 'weight': 0.5, 'start': 0.5}])\n"
            "for unit in two.record['controlnets']:\n"
            "    print(unit['preprocessor'], unit['weight'], unit['start'], unit['end'], unit['map'])\n"
            "print(Image.open(two.paths[0]).text['parameters'])\n"
            "display(two.images[0])"),
        new_markdown_cell("From the command line: `sdxl-nb controlnets`, and `sdxl-nb generate --prompt \"a moon\" "
                          "--controlnet tiny-sdxl-controlnet --control-image circle.png --control-type canny "
                          "--control-weight 0.8`."),
    ]
