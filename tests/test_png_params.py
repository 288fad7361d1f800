"""PNG Info's library half: our PNGs, A1111's `parameters` and ComfyUI's API graph read back as request fields."""

import io
import json

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from sdxl_nb.config.presets import load_presets
from sdxl_nb.errors import InputError
from sdxl_nb.record.png_params import read_png_parameters, scheduler_from_a1111
from sdxl_nb.request.prepare import prepare
from sdxl_nb.request.resolve import GenerationRequest

BASE = "stabilityai/stable-diffusion-xl-base-1.0"
A1111 = ("a castle on a hill, (masterpiece:1.2)\nNegative prompt: blurry, lowres\n"
         "Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234, Size: 832x1216, "
         "Model hash: 31e35c80fc, Model: sd_xl_base_1.0, VAE hash: 63aeecb90f, Clip skip: 2, Version: v1.10.1")


def png_with(**chunks) -> bytes:
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "grey").save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def test_our_png_gives_back_the_request_that_made_it(run):
    result = run(prompt="a heron at dawn", negative_prompt="fog", style="Cinematic", scheduler="Euler a", cfg=4.5,
                 seed=21, batch=2)
    second = read_png_parameters(result.paths[1])
    assert second.source == "sdxl_nb" and second.record["job_id"] == result.record["job_id"]
    assert second.fields == {"prompt": "a heron at dawn", "negative_prompt": "fog", "style": "Cinematic",
                             "scheduler": "Euler a", "steps": 2, "cfg": 4.5, "seed": 22, "width": 64, "height": 64,
                             "model": "tiny-sdxl", "mode": "txt2img"}
    assert "Negative prompt:" in second.text and second.unmapped == {}
    again = prepare(GenerationRequest(**{k: v for k, v in second.fields.items() if k != "mode"}))
    assert again.styled_prompt == result.record["styled_prompt"] and again.seeds == (22,)


def test_an_a1111_png_maps_prompt_sampler_size_and_model():
    read = read_png_parameters(png_with(parameters=A1111))
    assert read.source == "A1111" and read.text == A1111
    fields = read.fields
    assert fields["prompt"] == "a castle on a hill, (masterpiece:1.2)" and fields["negative_prompt"] == "blurry, lowres"
    assert (fields["steps"], fields["cfg"], fields["seed"], fields["width"], fields["height"]) == (30, 6.5, 1234, 832,
                                                                                                    1216)
    assert fields["scheduler"] == "DPM++ 2M Karras" and fields["model"] == BASE
    assert load_presets().styles[fields["style"]].prompt in ("{prompt}", "")  # the text is sent as it is
    assert set(read.unmapped) == {"Model hash", "VAE hash", "Clip skip"}


@pytest.mark.parametrize("sampler, schedule, expected", [
    ("DPM++ 2M", "Karras", "DPM++ 2M Karras"), ("DPM++ 2M Karras", None, "DPM++ 2M Karras"),
    ("Euler a", None, "Euler a"), ("Euler", "Automatic", "Euler"), ("Restart", None, None),
])
def test_a1111_sampler_names(sampler, schedule, expected):
    assert scheduler_from_a1111(sampler, schedule, load_presets()) == expected


def test_unknown_a1111_values_are_listed_not_guessed():
    text = "a fox\nSteps: 20, Sampler: Restart, CFG scale: 7, Seed: 5, Size: 512x512, Model: my_merge_v3"
    read = read_png_parameters(png_with(parameters=text))
    assert "scheduler" not in read.fields and "model" not in read.fields
    assert "Restart" in read.unmapped["Sampler"] and "my_merge_v3" in read.unmapped["Model"]


def test_a_comfyui_graph_from_our_own_export_reads_back():
    from sdxl_nb.backends.comfy.workflow import build_workflow

    resolved = prepare(GenerationRequest(prompt="a lighthouse", negative_prompt="fog", style="Cinematic",
                                         scheduler="DPM++ 2M SDE Karras", steps=25, cfg=6.0, seed=77, width=896,
                                         height=1152, model=BASE))
    graph = build_workflow(resolved).graph
    read = read_png_parameters(png_with(prompt=json.dumps(graph), workflow="{}"))
    assert read.source == "ComfyUI"
    assert read.fields == {"style": read.fields["style"], "prompt": resolved.styled_prompt,
                           "negative_prompt": resolved.effective_negative_prompt, "seed": 77, "steps": 25, "cfg": 6.0,
                           "scheduler": "DPM++ 2M SDE Karras", "width": 896, "height": 1152, "model": BASE}


def test_a_hand_made_comfyui_graph_with_sdxl_text_nodes_links_and_loras():
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "10": {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["4", 1], "lora_name": "x.safetensors"}},
        "20": {"class_type": "PrimitiveNode", "inputs": {"value": "a red fox in snow"}},
        "6": {"class_type": "CLIPTextEncodeSDXL", "inputs": {"text_g": ["20", 0], "text_l": ["20", 0], "clip": ["10", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["10", 1]}},
        "8": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["7", 0]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 768, "batch_size": 1}},
        "3": {"class_type": "KSamplerAdvanced", "inputs": {
            "noise_seed": 99, "steps": 12, "cfg": 3.5, "sampler_name": "euler_ancestral", "scheduler": "normal",
            "model": ["10", 0], "positive": ["6", 0], "negative": ["8", 0], "latent_image": ["5", 0]}},
    }
    fields = read_png_parameters(png_with(prompt=json.dumps(graph))).fields
    assert (fields["prompt"], fields["negative_prompt"], fields["seed"], fields["steps"]) == ("a red fox in snow", "",
                                                                                               99, 12)
    assert (fields["scheduler"], fields["width"], fields["height"], fields["model"]) == ("Euler a", 1024, 768, BASE)


@pytest.mark.parametrize("data, message", [
    (png_with(), "has no generation parameters"),
    (png_with(prompt="{not json"), "invalid JSON at line 1"),
    (png_with(prompt=json.dumps({"1": {"class_type": "SaveImage", "inputs": {}}})), "no KSampler node"),
    (b"not an image at all", "not a readable image"),
])
def test_what_cannot_be_read_is_one_line(data, message):
    with pytest.raises(InputError, match=message):
        read_png_parameters(data)


def test_a_jpeg_is_refused_by_name():
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="JPEG")
    with pytest.raises(InputError, match="a JPEG image carries no PNG text chunks"):
        read_png_parameters(buffer.getvalue())
