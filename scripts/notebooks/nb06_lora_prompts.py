"""Cells of notebooks/06_lora_prompts.ipynb: LoRAs (the demo LoRA), prompt weighting, long prompts, embeddings, checkpoints."""

from nbformat.v4 import new_code_cell, new_markdown_cell

FILENAME = "06_lora_prompts.ipynb"


def cells():
    return [
        new_markdown_cell(
            "# LoRAs, prompt weighting, long prompts and embeddings\n\n"
            "LoRA files are found in the folders of `SDXL_NB_LORAS` (an A1111 or ComfyUI root works too: its "
            "`models/Lora` or `models/loras`). The embedded demo LoRA `tiny-sdxl-lora` fits the demo model "
            "`tiny-sdxl` and is built on first use, like the model. Each LoRA is listed with its size, A1111's "
            "short hash and whether it fits the model."),
        new_code_cell(
            "import numpy as np\n"
            "from IPython.display import display\n\n"
            "import sdxl_nb\n"
            "from sdxl_nb.api import lora_listing\n\n"
            "for row in lora_listing('tiny-sdxl'):\n"
            "    print(row['name'], f\"{row['size_bytes'] / 2**20:.2f} MiB\", row['short_hash'],\n"
            "          'fits' if row['fits'] else row['problem'])"),
        new_markdown_cell(
            "Three ways mean the same: the A1111 tag in the prompt (removed from the text CLIP reads), "
            "`loras=[(NAME, WEIGHT)]` here, or `--lora NAME:WEIGHT` on the command line. The LoRA is loaded once; "
            "later jobs only switch adapters, and a job without LoRAs gives exactly the pixels of a model that "
            "never saw one."),
        new_code_cell(
            "small = dict(model='tiny-sdxl', width=64, height=64, steps=2, seed=3)\n"
            "plain = sdxl_nb.generate(prompt='a lighthouse', **small)\n"
            "tagged = sdxl_nb.generate(prompt='a lighthouse <lora:tiny-sdxl-lora:0.8>', **small)\n"
            "listed = sdxl_nb.generate(prompt='a lighthouse', loras=[('tiny-sdxl-lora', 0.8)], **small)\n"
            "again = sdxl_nb.generate(prompt='a lighthouse', **small)\n"
            "same = lambda a, b: np.array_equal(np.asarray(a.images[0]), np.asarray(b.images[0]))\n"
            "print('tag == loras=:', same(tagged, listed), '| LoRA changes pixels:', not same(plain, tagged),\n"
            "      '| after it, plain again:', same(plain, again))\n"
            "print(listed.record['loras'])\n"
            "print([e for e in again.record['events'] if 'LoRA' in e])\n"
            "display(plain.images[0], tagged.images[0])\n"
            "assert same(tagged, listed) and same(plain, again) and not same(plain, tagged)"),
        new_markdown_cell(
            "## Prompt weighting and long prompts\n\n"
            "A1111's syntax: `(word:1.3)`, `(word)` = x1.1, `[word]` = /1.1, nesting, `\\(` escapes and `BREAK`. "
            "Prompts of any length are read in 75-token chunks (tiny-sdxl's window is wider) through both text "
            "encoders. A prompt without syntax that fits one window is sent as plain text, exactly as before. The "
            "record's `conditioning` says how each prompt was read."),
        new_code_cell(
            "weighted = sdxl_nb.generate(prompt='a (lighthouse:1.5) at [dusk]', **small)\n"
            "print(weighted.record['conditioning']['prompt'])\n"
            "long_prompt = ', '.join(f'detail {i}' for i in range(60))\n"
            "long = sdxl_nb.generate(prompt=long_prompt, **small)\n"
            "print('chunks:', long.record['conditioning']['prompt']['chunks'], 'tokens:',\n"
            "      long.record['conditioning']['prompt']['tokens'], 'warnings:', long.record['warnings'])\n"
            "display(weighted.images[0], long.images[0])"),
        new_markdown_cell(
            "## Textual-inversion embeddings\n\n"
            "SDXL embeddings (a `clip_l` / `clip_g` pair in one .safetensors) in the folders of "
            "`SDXL_NB_EMBEDDINGS` are used by name in the prompt or the negative. Here a tiny one is made for "
            "tiny-sdxl."),
        new_code_cell(
            "import os\n"
            "import tempfile\n\n"
            "from sdxl_nb.config.tiny_lora import tiny_embedding_tensors, write_lora\n\n"
            "folder = tempfile.mkdtemp()\n"
            "write_lora(f'{folder}/glowstyle.safetensors', tiny_embedding_tensors(2))\n"
            "os.environ['SDXL_NB_EMBEDDINGS'] = folder\n"
            "styled = sdxl_nb.generate(prompt='a lighthouse, glowstyle', **small)\n"
            "print(styled.record['embeddings'])\n"
            "from PIL import Image\n\n"
            "print(Image.open(styled.paths[0]).text['parameters'])  # TI hashes, as A1111 writes them\n"
            "del os.environ['SDXL_NB_EMBEDDINGS']"),
        new_markdown_cell(
            "## The picker\n\n"
            "The lab's LoRA picker inserts the tag at the chosen weight into a prompt box."),
        new_code_cell(
            "import ipywidgets as widgets\n\n"
            "from sdxl_nb.ui.lora_picker import LoraPicker\n\n"
            "prompt_box = widgets.Textarea(value='a lighthouse')\n"
            "picker = LoraPicker(prompt_box, model='tiny-sdxl')\n"
            "picker.insert.click()\n"
            "print(prompt_box.value)\n"
            "widgets.VBox([prompt_box, picker.widget])"),
        new_markdown_cell(
            "## Single-file checkpoints\n\n"
            "A1111 and ComfyUI keep models as one `.safetensors` file. Folders listed in `SDXL_NB_CHECKPOINTS` "
            "(or an A1111/ComfyUI root: `models/Stable-diffusion`, `models/checkpoints`) are searched; a "
            "checkpoint's model id is its file name, listed with its A1111 `Model hash`. `convert` writes any "
            "model as such a file (here tiny-sdxl), and it loads offline with the same pixels."),
        new_code_cell(
            "from sdxl_nb.api import convert, list_models\n\n"
            "checkpoints = tempfile.mkdtemp()\n"
            "print(convert('tiny-sdxl', f'{checkpoints}/my-tiny.safetensors'))\n"
            "os.environ['SDXL_NB_CHECKPOINTS'] = checkpoints\n"
            "print([(m.id, m.source, m.model_hash) for m in list_models() if m.source == 'checkpoint'])\n"
            "from_file = sdxl_nb.generate(prompt='a lighthouse', **{**small, 'model': 'my-tiny'})\n"
            "print('same pixels as tiny-sdxl:', same(plain, from_file))\n"
            "print(Image.open(from_file.paths[0]).text['parameters'])  # Model hash, as A1111 writes it\n"
            "del os.environ['SDXL_NB_CHECKPOINTS']\n"
            "assert same(plain, from_file)"),
        new_markdown_cell(
            "## Hires fix and upscaling\n\n"
            "A1111's hires fix: the first pass at the requested size, an upscale (`Latent`, `Lanczos`, or an "
            "upscaler model from `SDXL_NB_UPSCALERS`), then a second img2img pass at the new size. The record and "
            "the PNG parameters keep the first pass's size and the hires settings, as A1111 writes them. "
            "`sdxl_nb.api.upscale` enlarges an existing image as its own recorded job."),
        new_code_cell(
            "from sdxl_nb.api import list_upscalers, upscale\n\n"
            "print([row['name'] for row in list_upscalers()])\n"
            "hires = sdxl_nb.generate(prompt='a lighthouse', hires_scale=2, hires_steps=2, hires_denoise=0.5,\n"
            "                         hires_upscaler='Lanczos', **small)\n"
            "print(hires.images[0].size, hires.record['hires']['first_pass'])\n"
            "print(Image.open(hires.paths[0]).text['parameters'])\n"
            "bigger = upscale(hires.paths[0], scale=2)\n"
            "print(bigger.record['mode'], bigger.images[0].size)"),
        new_markdown_cell(
            "## IP-Adapter: an image as part of the prompt\n\n"
            "IP-Adapter weights with their CLIP image encoder come from `SDXL_NB_IP_ADAPTERS` folders "
            "(h94/IP-Adapter's layout) or h94/IP-Adapter in the Hugging Face cache; the embedded "
            "`tiny-sdxl-ip-adapter` fits `tiny-sdxl`. One or more reference images and a scale per job, in every "
            "mode; scale 0 gives exactly the pixels of no adapter, and the next job without one is unchanged."),
        new_code_cell(
            "from sdxl_nb.api import ip_adapter_listing\n\n"
            "for row in ip_adapter_listing('tiny-sdxl'):\n"
            "    print(row['name'], row['a1111_hash'], 'fits' if row['fits'] else row['problem'])\n"
            "reference = f'{tempfile.mkdtemp()}/reference.png'\n"
            "Image.new('RGB', (64, 64), 'teal').save(reference)\n"
            "guided = sdxl_nb.generate(prompt='a lighthouse', ip_adapter='tiny-sdxl-ip-adapter',\n"
            "                          ip_images=[reference], ip_scale=0.8, **small)\n"
            "at_zero = sdxl_nb.generate(prompt='a lighthouse', ip_adapter='tiny-sdxl-ip-adapter',\n"
            "                           ip_images=[reference], ip_scale=0, **small)\n"
            "after = sdxl_nb.generate(prompt='a lighthouse', **small)\n"
            "print('changes pixels:', not same(plain, guided), '| scale 0 == none:', same(plain, at_zero),\n"
            "      '| the next job is unchanged:', same(plain, after))\n"
            "print(Image.open(guided.paths[0]).text['parameters'])  # an A1111 ControlNet unit\n"
            "display(guided.images[0])\n"
            "assert same(plain, at_zero) and same(plain, after) and not same(plain, guided)"),
    ]
