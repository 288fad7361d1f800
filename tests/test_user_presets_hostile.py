"""A hostile user presets file (any JSON problem, any depth, any number, any size) is one warning; built-ins work."""

import json
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdxl_nb.config.json_checker import MAX_JSON_BYTES
from sdxl_nb.config.presets import load_presets
from sdxl_nb.config.user_presets import save_style
from sdxl_nb.errors import PresetError
from sdxl_nb.request.prepare import prepare
from sdxl_nb.request.resolve import GenerationRequest
from tests.conftest import PYTHON, python_env
from tests.hostile import deep_json

SUFFIX = "(user styles not loaded; the built-in presets are in use)"
HOSTILE = {
    "deep-list": (deep_json(), "nested too deeply"),
    "deep-object": ('{"a":' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
    "deep-in-styles": ('{"styles": [{"name": "A", "prompt": "x", "steps": ' + deep_json(50_000) + "}]}",
                       "nested too deeply"),
    "long-int": ('{"styles": [{"name": "A", "prompt": "x", "steps": ' + "9" * 5000 + "}]}", "5000 digits"),
    "long-negative-int": ('{"schema": -' + "1" * 5000 + "}", "5000 digits"),
    "long-float": ('{"styles": [{"name": "A", "prompt": "x", "cfg": 1' + "0" * 5000 + '.5}]}',
                   "cfg: expected a finite number, got Infinity"),
    "exponent": ('{"styles": [{"name": "A", "prompt": "x", "cfg": 1e999}]}', "expected a finite number"),
    "not-utf8": (b'{"styles": ["\xff\xfe"]}', "not UTF-8"),
    "invalid": ('{"styles": [}', "invalid JSON at line 1"),
    "list": ("[1, 2]", "(top level): expected a JSON object"),
    "styles-number": ('{"styles": 3}', "styles: expected a list"),
    "style-list": ('{"styles": [[1]]}', "styles[0]: expected an object, got list"),
    "name-list": ('{"styles": [{"name": ["a"], "prompt": "x"}]}', "styles[0].name: expected str"),
    "name-object": ('{"styles": [{"name": {"a": 1}, "prompt": "x"}]}', "styles[0].name: expected str"),
    "scheduler-list": ('{"styles": [{"name": "A", "prompt": "x", "scheduler": [1]}]}', "scheduler: expected str"),
    "steps-bool": ('{"styles": [{"name": "A", "prompt": "x", "steps": true}]}', "steps: expected int, got true"),
    "schema-object": ('{"schema": {"a": [1]}, "styles": []}', "schema: unknown version"),
    "key-with-newline": ('{"styles": [], "a\\nb": 1}', "unknown key"),
    "huge-key": ('{"' + "k" * 100_000 + '": 1}', "unknown key"),
    "huge-value": ('{"styles": [{"name": "A", "prompt": "x", "steps": "' + "s" * 100_000 + '"}]}',
                   "steps: expected int"),
}


@pytest.fixture
def user_file(tmp_path, monkeypatch):
    path = tmp_path / "user_presets.json"
    monkeypatch.setenv("SDXL_NB_USER_PRESETS", str(path))
    return path


def _write(path, content):
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))


def _assert_one_warning(presets, path, problem=""):
    error = presets.user_error
    assert error.startswith(f"{path}: ") and error.endswith(SUFFIX), error
    assert problem in error and "\n" not in error and "\r" not in error and len(error) < 400, error
    assert presets.styles == load_presets(user_layer=False).styles and presets.user_styles == ()


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_user_file_is_one_warning_and_built_in_styles_work(user_file, name):
    content, problem = HOSTILE[name]
    _write(user_file, content)
    presets = load_presets()
    _assert_one_warning(presets, user_file, problem)
    resolved = prepare(GenerationRequest(prompt="x", style="Photoreal", model="tiny-sdxl"))
    assert resolved.style.name == "Photoreal"


def test_a_file_over_the_size_cap_is_refused_unread(user_file):
    with user_file.open("wb") as out:
        out.write(b'{"styles": [], "pad": "')
        out.write(b"x" * MAX_JSON_BYTES)
        out.write(b'"}')
    _assert_one_warning(load_presets(), user_file, "over 5 MB")


def test_saving_a_style_over_a_hostile_file_is_refused_and_leaves_it(user_file):
    _write(user_file, deep_json())
    before = user_file.read_bytes()
    with pytest.raises(PresetError, match="nested too deeply"):
        save_style({"name": "Mine", "prompt": "{prompt}"})
    assert user_file.read_bytes() == before


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["name", "prompt", "negative", "steps", "cfg", "scheduler", "styles", "schema", "x"]),
        inner, max_size=5),
    max_leaves=20)
_style = st.fixed_dictionaries({"name": st.text(min_size=1, max_size=6) | _json, "prompt": st.text(max_size=6) | _json},
                               optional={"steps": _json, "cfg": _json, "scheduler": _json, "negative": _json})
_file = _json | st.fixed_dictionaries({"styles": st.lists(_style | _json, max_size=4)}, optional={"schema": _json})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=_file)
def test_any_json_value_is_styles_or_one_warning(user_file, raw):
    user_file.write_text(json.dumps(raw), encoding="utf-8")
    presets = load_presets()
    if presets.user_error is None:
        assert set(presets.user_styles) <= set(presets.styles)
    else:
        _assert_one_warning(presets, user_file)


def test_generate_and_presets_commands_go_on_with_one_warning_line(user_file, tmp_path):
    _write(user_file, deep_json())
    out = tmp_path / "out"
    done = subprocess.run([PYTHON, "-m", "sdxl_nb", "generate", "--prompt", "a fox", "--model", "tiny-sdxl",
                           "--steps", "2", "--width", "64", "--height", "64", "--out", str(out)],
                          capture_output=True, text=True, env=python_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [f"warning: {user_file}: nested too deeply to read {SUFFIX}"], done.stderr
    assert "Traceback" not in done.stderr and len(list(out.glob("*.png"))) == 1


@pytest.mark.parametrize("name", ["deep-list", "long-int", "invalid"])
def test_a_bomb_in_the_presets_file_itself_is_one_line_exit_2(tmp_path, name):
    path = tmp_path / "presets.json"
    _write(path, HOSTILE[name][0])
    done = subprocess.run([PYTHON, "-m", "sdxl_nb", "presets"], capture_output=True, text=True, timeout=120,
                          env=python_env({"SDXL_NB_PRESETS": str(path)}))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"sdxl-nb presets: error: {path}: ") and HOSTILE[name][1] in lines[0]


def test_generate_panel_opens_with_one_red_line_for_a_bomb(user_file):
    from sdxl_nb.ui.generate_panel import GeneratePanel

    _write(user_file, HOSTILE["long-int"][0])
    panel = GeneratePanel()
    assert "5000 digits" in panel.message.value and "built-in presets are in use" in panel.message.value
    assert "Photoreal" in [value for _label, value in panel.form.style.options]
