"""The gallery's Reuse follows PNG Info's Load into Generate rule: input images only from the output folder's inputs/
by sha256 (record.png_inputs.local_inputs), never from a path the image's record names."""

import hashlib
import html
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("ipywidgets")

from sdxl_nb.ui.gallery import Gallery, GalleryItem  # noqa: E402
from tests.hostile import png_with_chunks  # noqa: E402
from tests.ui_helpers import lab_for  # noqa: E402


@pytest.fixture
def lab(engine, tmp_path):
    return lab_for(engine, tmp_path / "out")


def reuse(lab, path: Path) -> Gallery:
    gallery = Gallery(on_reuse=lab.reuse)
    gallery.reuse(GalleryItem(path=path, caption="picked"))
    return gallery


def test_reuse_loads_the_init_image_the_job_kept(lab, run, tmp_path):
    init = tmp_path / "desktop" / "photo.png"
    init.parent.mkdir()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(init)
    result = run(prompt="a reused fox", init_image=str(init), strength=0.6, out_dir=lab.out_dir)
    init.unlink()  # the original is gone: the folder's copy is what Reuse loads
    reuse(lab, result.paths[0])
    form = lab.generate.form
    kept = Path(lab.out_dir) / result.record["init_image"]["path"]
    assert form.mode.value == "img2img" and bytes(form.init_upload.value[0]["content"]) == kept.read_bytes()


def test_reuse_never_reads_a_path_the_record_names(lab, run, tmp_path):
    secret = tmp_path / "token.png"
    Image.new("RGB", (64, 64), "red").save(secret)  # a readable image: only the rule keeps it out
    result = run(prompt="a fox", out_dir=lab.out_dir)
    with Image.open(result.paths[0]) as image:
        record = json.loads(image.text["sdxl_nb"])
    record.update(mode="img2img", strength=0.5,
                  init_image={"path": str(secret), "sha256": hashlib.sha256(secret.read_bytes()).hexdigest(),
                              "size": [64, 64]})
    planted = png_with_chunks(Path(lab.out_dir) / "planted.png", {"sdxl_nb": json.dumps(record)})
    gallery = reuse(lab, planted)
    form = lab.generate.form
    assert form.mode.value == "txt2img" and not form.init_upload.value
    assert "init image not loaded: not in this output folder's inputs/" in html.unescape(gallery.note.value)
