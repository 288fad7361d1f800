"""Every SDXL_NB_* setting is read in sdxl_nb/settings.py, at call time; no other module reads one."""

import ast

import pytest

from sdxl_nb import settings
from tests.conftest import REPO

PACKAGE = REPO / "sdxl_nb"
_READS = {"get", "getenv", "setdefault", "pop"}


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ")


def _env_keys(tree: ast.AST):
    """(line, key expression) of every read of one variable: os.environ.get/[...]/in, os.getenv."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            if (node.func.attr in _READS and _is_environ(node.func.value)) or node.func.attr == "getenv":
                yield node.lineno, node.args[0]
        elif isinstance(node, ast.Subscript) and _is_environ(node.value):
            yield node.lineno, node.slice
        elif isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
            yield node.lineno, node.left


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level NAME = "text" assignments, so os.environ.get(API_KEY_ENV) is understood."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            found.update({t.id: node.value.value for t in node.targets if isinstance(t, ast.Name)})
    return found


def env_reads_outside_settings(package=PACKAGE) -> list[str]:
    """Each read of an SDXL_NB_ variable (or of a key that cannot be told) outside settings.py, as path:line."""
    found = []
    for path in sorted(package.rglob("*.py")):
        if path == package / "settings.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = _constants(tree)
        for line, key in _env_keys(tree):
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                name = key.value
            elif isinstance(key, ast.Name) and key.id in constants:
                name = constants[key.id]
            else:  # a computed key could name any variable: it belongs in settings.py too
                name = f"<{ast.unparse(key)}>"
            if not name.startswith("SDXL_NB_") and not name.startswith("<"):
                continue
            found.append(f"{path.relative_to(package.parent)}:{line} reads {name}")
    return found


def test_no_module_but_settings_reads_an_sdxl_nb_variable():
    assert env_reads_outside_settings() == []


def test_the_check_finds_reads_in_every_form(tmp_path):
    bad = tmp_path / "sdxl_nb"
    bad.mkdir()
    (bad / "settings.py").write_text('import os\nX = os.environ.get("SDXL_NB_X")\n', encoding="utf-8")
    (bad / "reads.py").write_text(
        'import os\nfrom os import environ\nURL_ENV = "SDXL_NB_URL"\nKEY_ENV = "LAMBDA_API_KEY"\n'
        'a = os.environ.get("SDXL_NB_A")\nb = os.getenv("SDXL_NB_B", "")\nc = os.environ["SDXL_NB_C"]\n'
        'd = "SDXL_NB_D" in os.environ\ne = environ.get(URL_ENV)\nf = os.environ.get(f"SDXL_NB_{a}")\n'
        'ok = os.environ.get("HF_HOME"), os.environ.get(KEY_ENV), os.environ.get("WORLD_SIZE", "1")\n',
        encoding="utf-8")
    assert env_reads_outside_settings(bad) == [
        "sdxl_nb/reads.py:5 reads SDXL_NB_A", "sdxl_nb/reads.py:6 reads SDXL_NB_B", "sdxl_nb/reads.py:7 reads SDXL_NB_C",
        "sdxl_nb/reads.py:8 reads SDXL_NB_D", "sdxl_nb/reads.py:9 reads SDXL_NB_URL",
        "sdxl_nb/reads.py:10 reads <f'SDXL_NB_{a}'>"]


def test_settings_are_read_at_call_time_and_empty_means_unset(monkeypatch):
    monkeypatch.setenv("SDXL_NB_OUTPUT", "/tmp/first")
    assert settings.output_dir() == "/tmp/first"
    monkeypatch.setenv("SDXL_NB_OUTPUT", "/tmp/second")
    assert settings.output_dir() == "/tmp/second"
    monkeypatch.setenv("SDXL_NB_OUTPUT", "")
    assert settings.output_dir() is None
    monkeypatch.delenv("SDXL_NB_S3_URL", raising=False)
    assert settings.s3_url() is None


@pytest.mark.parametrize("value, on", [("1", True), ("true", True), ("ON", True), ("yes", True), ("0", False),
                                       ("", False), ("no", False)])
def test_auto_tune_accepts_the_usual_words_for_on(monkeypatch, value, on):
    monkeypatch.setenv("SDXL_NB_AUTO_TUNE", value)
    assert settings.auto_tune() is on


def test_every_setting_has_a_name_and_a_function():
    names = {value for key, value in vars(settings).items() if key.isupper() and isinstance(value, str)
             and value.startswith("SDXL_NB_")}
    source = (PACKAGE / "settings.py").read_text(encoding="utf-8")
    assert len(names) >= 13
    for name in names:
        constant = next(key for key, value in vars(settings).items() if value == name)
        assert f"_value({constant})" in source, f"{name} has no function"
