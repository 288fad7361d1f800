"""User styles: saved over presets.json, validated with the same rules, seen at once, hashed by content."""

import json
import os

import pytest

from sdxl_nb.config.presets import load_presets
from sdxl_nb.config.user_presets import delete_style, save_style, style_from_fields
from sdxl_nb.errors import InputError, PresetError
from sdxl_nb.record.joblog import read_records
from sdxl_nb.request.prepare import prepare
from sdxl_nb.request.resolve import GenerationRequest


@pytest.fixture
def user_file(tmp_path, monkeypatch):
    path = tmp_path / "config" / "user_presets.json"
    monkeypatch.setenv("SDXL_NB_USER_PRESETS", str(path))
    return path


def test_saved_style_appears_at_once_and_edits_replace_it(user_file):
    assert "Grain" not in load_presets().styles
    saved = save_style({"name": "Grain", "prompt": "{prompt}, film grain", "negative": "smooth", "steps": 3})
    presets = load_presets()
    assert presets.styles["Grain"] == saved and presets.user_styles == ("Grain",)
    assert presets.styles["Grain"].apply("a fox", "blurry") == ("a fox, film grain", "blurry, smooth")
    edited = save_style({"name": "Grain", "prompt": "{prompt}, heavy grain", "negative": "smooth"})
    assert load_presets().styles["Grain"] == edited and edited.steps is None
    assert edited.content_hash != saved.content_hash
    assert len(json.loads(user_file.read_text(encoding="utf-8"))["styles"]) == 1


def test_user_style_overrides_a_built_in_one_until_deleted(user_file):
    built_in = load_presets().styles["Photoreal"]
    save_style({"name": "Photoreal", "prompt": "{prompt}, photo"})
    assert load_presets().styles["Photoreal"].prompt == "{prompt}, photo"
    assert delete_style("Photoreal")
    assert load_presets().styles["Photoreal"] == built_in
    assert not delete_style("Photoreal")


@pytest.mark.parametrize("style, expected", [
    ({"name": "X", "prompt": "{prompt}", "scheduler": "Nope"}, ["scheduler", "Nope", "accepted:", "Euler a"]),
    ({"name": "X", "prompt": "{prompt}", "steps": 0}, ["steps", "must be >= 1"]),
    ({"name": "X", "prompt": "{prompt}", "colour": "red"}, ["colour", "unknown key"]),
    ({"name": "X"}, ["prompt", "missing"]),
    ({"name": " ", "prompt": "x"}, ["needs a name"]),
])
def test_invalid_style_names_the_problem_and_leaves_the_file_alone(user_file, style, expected):
    save_style({"name": "Keep", "prompt": "{prompt}, kept"})
    before = user_file.read_bytes()
    with pytest.raises(PresetError) as info:
        save_style(style)
    assert all(part in str(info.value) for part in expected), str(info.value)
    assert user_file.read_bytes() == before
    assert not [p for p in os.listdir(user_file.parent) if p.startswith(".user_presets-")]


@pytest.mark.parametrize("content, problem", [
    ('{"styles": [{"name": "A"}]}', "styles[0].prompt: missing"),
    ('{"styles": [', "invalid JSON at line 1"),
    ('{"schema": 9, "styles": []}', "schema: unknown version 9"),
    ('{"styles": [{"name": "A", "prompt": "x", "cfg": NaN}]}', "styles[0].cfg: expected a finite number, got NaN"),
])
def test_broken_user_file_is_one_line_and_the_built_in_presets_stay_usable(user_file, content, problem):
    user_file.parent.mkdir(parents=True)
    user_file.write_text(content, encoding="utf-8")
    presets = load_presets()
    assert presets.user_error.startswith(f"{user_file}: ") and problem in presets.user_error
    assert "\n" not in presets.user_error and presets.user_error.endswith("(user styles not loaded; the built-in "
                                                                          "presets are in use)")
    assert presets.styles == load_presets(user_layer=False).styles and presets.user_styles == ()
    with pytest.raises(InputError, match="unknown style 'Mine'; accepted: .*; .*user styles not loaded"):
        prepare(GenerationRequest(prompt="x", style="Mine"))  # why a user style is missing is said


def test_a_broken_user_file_is_a_warning_of_the_job_and_of_the_listing(user_file, run, capsys):
    user_file.parent.mkdir(parents=True)
    user_file.write_text("{", encoding="utf-8")
    result = run(prompt="x")
    assert result.status == "ok" and any(str(user_file) in w for w in result.record["warnings"])
    from sdxl_nb.cli import main

    assert main(["presets"]) == 0
    assert capsys.readouterr().err.startswith(f"warning: {user_file}: invalid JSON")


def test_generate_panel_opens_with_a_red_line_for_a_broken_user_file(user_file):
    from sdxl_nb.ui.generate_panel import GeneratePanel

    user_file.parent.mkdir(parents=True)
    user_file.write_text('{"styles": 3}', encoding="utf-8")
    panel = GeneratePanel()
    assert "styles: expected a list" in panel.message.value and "built-in presets are in use" in panel.message.value
    assert "Photoreal" in [value for _label, value in panel.form.style.options]


def test_form_fields_become_a_style_and_bad_numbers_say_what_is_accepted():
    assert style_from_fields("A", "{prompt}, x", "", "", None, " 12 ", "") == {"name": "A", "prompt": "{prompt}, x",
                                                                              "steps": 12}
    with pytest.raises(PresetError, match="steps 'many' is not valid; accepted: a whole number"):
        style_from_fields("A", "x", steps="many")


def test_job_records_name_the_user_style_and_its_hash_follows_the_edit(user_file, run):
    first_style = save_style({"name": "Mine", "prompt": "{prompt}, ink", "negative": "colour"})
    first = run(prompt="a fox", style="Mine")
    second_style = save_style({"name": "Mine", "prompt": "{prompt}, ink", "negative": "colour, blur"})
    second = run(prompt="a fox", style="Mine", out_dir=first.paths[0].parent)
    records = read_records(first.paths[0].parent / "jobs.log")
    assert [r["style"] for r in records] == [{"name": "Mine", "hash": first_style.content_hash},
                                             {"name": "Mine", "hash": second_style.content_hash}]
    assert first_style.content_hash != second_style.content_hash
    assert second.record["effective_negative_prompt"] == "colour, blur"


def test_listeners_hear_every_save_and_delete_and_a_broken_one_undoes_nothing(user_file):
    from sdxl_nb.config.user_presets import on_change

    heard = []

    def broken():
        raise RuntimeError("view gone\nmore")

    unsubscribe = [on_change(broken), on_change(lambda: heard.append(sorted(load_presets().user_styles)))]
    try:
        with pytest.warns(UserWarning, match="a style list did not refresh: view gone$"):
            save_style({"name": "Heard", "prompt": "{prompt}, heard"})
        assert heard == [["Heard"]]  # the listener after the broken one ran, on the saved file
        unsubscribe[0]()
        assert delete_style("Heard") and heard == [["Heard"], []]
    finally:
        for stop in unsubscribe:
            stop()
    save_style({"name": "Unheard", "prompt": "{prompt}"})
    assert len(heard) == 2
