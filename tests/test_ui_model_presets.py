"""Model panel (load status, ETA, Generate re-enabled after loading, one engine per kernel), preset editor,
memory warning, and the lab's light start (nothing loaded, no torch imported)."""

import html
import subprocess

import pytest

from sdxl_nb.errors import InputError
from sdxl_nb.record.joblog import read_records
from tests.conftest import PYTHON, python_env
from tests.ui_helpers import lab_for, small_form, status_kind


@pytest.fixture
def user_presets(tmp_path, monkeypatch):
    path = tmp_path / "user_presets.json"
    monkeypatch.setenv("SDXL_NB_USER_PRESETS", str(path))
    return path


def test_load_turns_yellow_then_green_and_enables_generate_as_soon_as_it_finishes(tmp_path):
    from sdxl_nb.backends.local import Engine
    from sdxl_nb.ui import GeneratePanel, ModelPanel

    out = tmp_path / "out"
    for attempt in (1, 2):  # a fresh engine each time: the second load has an ETA from the first
        lab = lab_for(Engine(device="cpu"), out)
        model, panel = lab.model, lab.generate
        assert "no model loaded yet" in model.status.value and not panel.generate.disabled
        enabled, statuses = [], []
        panel.generate.observe(lambda change, seen=enabled: seen.append(not change.new), "disabled")
        model.status.observe(lambda change, seen=statuses: seen.append(change.new), "value")
        model.load_button.click()
        assert lab.queue.wait_idle(120)
        loading = [s for s in statuses if "sdxl-status-busy" in s]
        assert any("loading tiny-sdxl: UNet" in s for s in loading)
        expected_eta = "no earlier load of it recorded" if attempt == 1 else "(earlier loads took ~"
        assert all(expected_eta in s for s in loading)
        assert enabled == [False, True] and not panel.generate.disabled  # disabled during the load only
        assert status_kind(model.status) == "ok" and "loaded tiny-sdxl in" in model.status.value
    # One engine per kernel: panels made later show what it holds.
    assert "loaded: tiny-sdxl" in ModelPanel(lab.queue, out).status.value
    alone = GeneratePanel(lab.queue, out_dir=out)
    assert alone.model_panel.model_id == "tiny-sdxl" and "loaded: tiny-sdxl" in alone.model_panel.status.value


def test_unavailable_model_is_marked_with_its_reason(engine, tmp_path):
    lab = lab_for(engine, tmp_path / "out")
    label = dict((value, text) for text, value in lab.model.dropdown.options)["stabilityai/sdxl-turbo"]
    assert label.startswith("✗") and "not available" in label
    lab.model.dropdown.value = "stabilityai/sdxl-turbo"
    assert status_kind(lab.model.status) == "error" and "hf download stabilityai/sdxl-turbo" in lab.model.status.value
    assert lab.model.load_button.disabled


def test_saved_style_shows_at_once_and_its_hash_follows_the_edit(engine, tmp_path, user_presets):
    lab = lab_for(engine, tmp_path / "out")
    editor, panel = lab.panels["Presets"], lab.generate
    editor.name.value, editor.prompt.value, editor.negative.value = "Grain", "{prompt}, film grain", "smooth"
    editor.steps.value = "3"
    editor.save.click()
    assert status_kind(editor.status) == "ok"
    assert "Grain" in [value for _, value in panel.form.style.options]
    small_form(panel.form, seed=2)
    panel.form.negative.value = "fog"
    panel.form.style.value = "Grain"
    assert panel.form.negative.value == "fog, smooth" and panel.form.steps.value == 3
    panel.generate.click()
    assert panel.wait(120)
    editor.negative.value = "smooth, plastic"
    editor.save.click()
    assert panel.form.negative.value == "fog, smooth, plastic"  # the box follows the edited style
    panel.generate.click()
    assert panel.wait(120)
    first, second = read_records(tmp_path / "out" / "jobs.log")
    assert first["style"]["name"] == second["style"]["name"] == "Grain"
    assert first["style"]["hash"] != second["style"]["hash"]
    assert second["effective_negative_prompt"] == "fog, smooth, plastic" and second["steps"] == 3
    before = user_presets.read_bytes()
    editor.cfg.value = "strong"
    editor.save.click()
    assert status_kind(editor.status) == "error" and "cfg 'strong' is not valid" in html.unescape(editor.status.value)
    assert user_presets.read_bytes() == before


def test_a_saved_style_is_in_every_panels_style_list_at_once_and_a_deleted_one_leaves_them(engine, tmp_path,
                                                                                            user_presets):
    lab = lab_for(engine, tmp_path / "out")
    editor, animate, sweep = lab.panels["Presets"], lab.panels["Animate"], lab.panels["Sweep"]
    lists = [lab.generate.form.style, animate.form.style, sweep.form.style]
    assert lists[0].options == lists[1].options == lists[2].options  # one source: same names, same descriptions
    editor.name.value, editor.prompt.value, editor.description.value = "Grain", "{prompt}, film grain", "film look"
    editor.save.click()
    assert status_kind(editor.status) == "ok"
    for dropdown in lists:
        assert ("Grain — film look", "Grain") in dropdown.options
    animate.form.style.value = sweep.form.style.value = "Grain"
    assert animate.request()[0].style == "Grain" and sweep.base_request()[0].style == "Grain"
    editor.description.value = "grainy film look"
    editor.save.click()
    assert all(("Grain — grainy film look", "Grain") in dropdown.options for dropdown in lists)
    assert animate.form.style.value == sweep.form.style.value == "Grain"  # an edit keeps the choice
    editor.delete.click()
    default = lab.generate.form.presets.defaults.style
    assert all("Grain" not in [name for _, name in dropdown.options] for dropdown in lists)
    assert animate.form.style.value == sweep.form.style.value == default


def test_risky_request_gets_an_orange_warning_and_runs_only_when_asked(engine, tmp_path, monkeypatch):
    import sdxl_nb.backends.local.core as core

    monkeypatch.setattr(core, "free_memory_bytes", lambda device: 50 * 1024**2)
    lab = lab_for(engine, tmp_path / "out")
    panel = lab.generate
    small_form(panel.form, seed=4, batch=4)
    panel.generate.click()
    assert panel.wait(120)
    assert "memory check: risky" in panel.memory.value and "sdxl-status-warning" in panel.memory.value
    assert "is free" in panel.memory.value and panel.run_anyway.layout.display is None
    assert not (tmp_path / "out" / "jobs.log").exists()
    panel.run_anyway.click()
    assert panel.wait(120)
    (record,) = read_records(tmp_path / "out" / "jobs.log")
    assert record["batch"] == 4 and len(panel.results.gallery.children) == 4


def test_lab_appears_with_nothing_loaded_and_without_importing_torch(tmp_path):
    code = ("import sys, sdxl_nb\n"
            "lab = sdxl_nb.lab()\n"
            "print(lab.model.status.value)\n"
            "print(sorted(lab.panels), [m for m in ('torch', 'diffusers') if m in sys.modules])")
    result = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=60,
                            env=python_env({"SDXL_NB_OUTPUT": str(tmp_path / "out")}))
    assert result.returncode == 0, result.stderr
    assert "no model loaded yet" in result.stdout
    assert "['Animate', 'Generate', 'PNG Info', 'Presets', 'Queue', 'Sweep'] []" in result.stdout


def test_engine_settings_apply_between_jobs(tmp_path):
    from sdxl_nb.backends.local import Engine

    engine = Engine(device="cpu")  # its own: the settings below must not leak into other tests
    lab = lab_for(engine, tmp_path / "out")
    assert "retry lighter on out of memory on" in lab.settings.status.value
    lab.settings.profile.value = "Low memory"
    lab.settings.auto_tune.value = False
    lab.settings.apply.click()
    small_form(lab.generate.form, seed=3, batch=1)
    lab.generate.generate.click()
    assert lab.generate.wait(120)
    (record,) = read_records(tmp_path / "out" / "jobs.log")
    assert record["env"]["options"]["vae_tiling"] is True and record["env"]["options"]["cpu_offload"] is True
    assert engine.auto_tune is False
    lab.settings.backend.value = "ComfyUI"
    lab.settings.apply.click()  # no server URL: one red line, nothing changes
    assert "type it in the Server box" in html.unescape(lab.settings.status.value)


def test_a_profile_the_device_cannot_run_is_refused_at_apply(tmp_path):
    from sdxl_nb.backends.local import Engine
    from sdxl_nb.backends.replicas import ReplicaEngine
    from sdxl_nb.config.engine_profiles import engine_options

    engine = Engine(device="cpu")
    lab = lab_for(engine, tmp_path / "out")
    lab.settings.profile.value = "Low memory"
    lab.settings.apply.click()
    lab.settings.profile.value = "Fastest FP8 (Hopper)"
    lab.settings.apply.click()  # on this CPU: one red line at once, not a failed job later
    status = html.unescape(lab.settings.status.value)
    assert "float8 tensor cores" in status and "runs on cpu" in status and "\n" not in status.strip()
    small_form(lab.generate.form, seed=3, batch=1)
    lab.generate.generate.click()
    assert lab.generate.wait(120)
    (record,) = read_records(tmp_path / "out" / "jobs.log")  # the earlier choice held
    assert record["status"] == "ok" and record["env"]["options"]["vae_tiling"] and not record["env"]["options"]["fp8"]
    replicas = ReplicaEngine(engines=[Engine(device="cpu"), Engine(device="cpu")])
    with pytest.raises(InputError, match="float8 tensor cores"):  # every replica or none
        replicas.configure(engine_options("Fastest FP8 (Hopper)"))
    assert not any(e.options.fp8 for e in replicas.engines)
