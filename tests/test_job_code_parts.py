"""The parts of a job's script that need no model: recorded values as literals, the engine bundle's refusals,
the import block, and how a job is named (id, image, result, record)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sdxl_nb.codegen.bundle import Bundle, NotEmbeddable
from sdxl_nb.codegen.literal import literal

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.tuples(inner)
    | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=4),
    max_leaves=12)


@given(values)
def test_a_literal_evaluates_to_the_recorded_value(value):
    assert eval(literal(value)) == value  # noqa: S307  (our own source text)


def test_infinities_and_nan_are_written_as_floats():
    assert eval(literal([math.inf, -math.inf])) == [math.inf, -math.inf]  # noqa: S307
    assert math.isnan(eval(literal(math.nan)))  # noqa: S307


def test_a_dataclass_is_written_as_its_fields_and_properties():
    from sdxl_nb.request.inpaint import InpaintSettings

    settings = InpaintSettings(mask_blur=2, inpaint_area="Only masked")
    written = eval(literal(settings))  # noqa: S307
    assert (written.mask_blur, written.only_masked, written.fill_index) == (2, True, settings.fill_index)
    with pytest.raises(TypeError, match="no source for a recorded object"):
        literal(object())


def test_engine_code_that_needs_sdxl_nb_at_run_time_is_refused():
    with pytest.raises(NotEmbeddable, match="needs sdxl_nb at run time"):
        Bundle().add("sdxl_nb.backends.local.run_loop:RunLoop")  # uses `sdxl_nb.backends.local.environment as env`
    with pytest.raises(NotEmbeddable, match="sdxl_nb.settings is a module: what uses it needs sdxl_nb at run time"):
        Bundle().add("sdxl_nb.backends.local.loading:default_device")  # `from sdxl_nb import settings`
    with pytest.raises(NotEmbeddable, match="defines no Nothing"):
        Bundle().add("sdxl_nb.backends.local.decode:Nothing")


def test_a_left_out_name_is_a_stub_that_says_so():
    from sdxl_nb.codegen.script import left_out

    bundle = Bundle(leave_out=left_out(SimpleNamespace(controlnets=(), mode="txt2img", inpaint=None), None))
    bundle.add("sdxl_nb.backends.local.calls:CallArguments")
    namespace: dict = {}
    exec(bundle.text().split("\n\n\n")[0], namespace)  # noqa: S102  (the stub comes first)
    with pytest.raises(NotImplementedError, match="inpaint_area:InpaintInputs is not part of this script"):
        namespace["InpaintInputs"]()


def test_the_import_block_merges_and_sorts():
    from sdxl_nb.codegen.template import import_block

    block = import_block(["import torch", "from dataclasses import field", "import re", "from dataclasses import dataclass",
                          "from PIL import Image", "import torch"])
    assert block == "import re\nfrom dataclasses import dataclass, field\n\nimport torch\nfrom PIL import Image"


def test_a_job_is_named_by_result_record_or_unknown_id(tmp_path):
    from sdxl_nb.codegen import find_record
    from sdxl_nb.errors import InputError

    record = {"job_id": "abc"}
    assert find_record(SimpleNamespace(record=record, paths=[tmp_path / "x.png"])) == (record, tmp_path)
    assert find_record(record, tmp_path) == (record, tmp_path)
    with pytest.raises(InputError, match="has no jobs.log"):
        find_record("abc", tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        find_record(str(tmp_path / "gone.png"))
    (tmp_path / "jobs.log").write_text('{"job_id": "abc", "mode": "txt2img", "images": [{"path": "a.png"}]}\n')
    with pytest.raises(InputError, match="job id 'zzz' matches no job"):
        find_record("zzz", tmp_path)


def test_jobs_with_an_upscaler_model_are_refused_in_one_line(engine, tmp_path, monkeypatch):
    """Upscaler models go through sdxl_nb's weights checker before spandrel: such jobs are not written as code."""
    from sdxl_nb import code
    from sdxl_nb.codegen import NotWritable
    from sdxl_nb.jobs.generate import generate
    from sdxl_nb.jobs.upscale import upscale
    from tests.conftest import SMALL
    from tests.tiny_upscaler import write_tiny_upscaler

    folder = tmp_path / "upscalers"
    folder.mkdir()
    write_tiny_upscaler(folder / "tiny-compact.safetensors", scale=2)
    monkeypatch.setenv("SDXL_NB_UPSCALERS", str(folder))
    hires = generate(out_dir=tmp_path / "out", engine=engine, **SMALL, seed=2, prompt="a fox", hires_scale=2,
                     hires_steps=2, hires_denoise=0.5, hires_upscaler="tiny-compact")
    enlarged = upscale(hires.paths[0], scale=2, upscaler="tiny-compact", out_dir=tmp_path / "up", engine=engine)
    for result, what in ((hires, "the hires upscaler 'tiny-compact' is a model file"),
                         (enlarged, "upscaler 'tiny-compact' is a model file")):
        with pytest.raises(NotWritable, match=f"^this job cannot be written as plain code yet: {what}"):
            code(result.paths[0])
