"""Every source file compiles, is UTF-8, and has no tabs."""

import py_compile
import subprocess

import pytest

from tests.conftest import REPO

TEXT_SUFFIXES = {".py", ".json", ".md", ".toml", ".yml", ".yaml", ".ipynb", ".sh", ".txt", ".cfg"}


def tracked_files():
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return [REPO / name for name in listed.stdout.splitlines() if (REPO / name).is_file()]


def test_text_files_are_utf8_without_tabs():
    problems = []
    for path in tracked_files():
        if path.suffix not in TEXT_SUFFIXES and path.name not in ("Makefile", "Dockerfile", "run"):
            continue
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"{path}: not UTF-8")
            continue
        if "\t" in text and path.name != "Makefile":
            problems.append(f"{path}: tab character")
    assert problems == []


def test_python_sources_compile(tmp_path):
    for path in tracked_files():
        if path.suffix == ".py":
            py_compile.compile(str(path), cfile=str(tmp_path / "x.pyc"), doraise=True)
