"""File names: safe slugs, the naming pattern, never overwriting."""

import re
from datetime import datetime

import pytest

from sdxl_nb.record.naming import frame_name, image_name, slugify
from sdxl_nb.record.store import leftover_temp_files, write_new_file


@pytest.mark.parametrize("prompt", [
    "../../etc/passwd", "a/b\\c", "..", "", "   ", "\x00\x1b[31mred", "ünïcödé façade 東京", "C:\\Windows\\evil",
    "a" * 500, "~/.ssh/id_rsa", "name.png", "-leading-dash-",
])
def test_slug_is_short_ascii_and_cannot_leave_the_folder(prompt):
    slug = slugify(prompt)
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug), slug
    assert len(slug) <= 40


def test_slug_keeps_meaning_when_possible():
    assert slugify("A Red Fox, in the SNOW!") == "a-red-fox-in-the-snow"
    assert slugify("façade") == "facade"
    assert slugify("東京") == "image"


def test_image_and_frame_names_follow_the_pattern():
    moment = datetime(2026, 1, 2, 3, 4, 5)
    assert image_name(moment, "a fox", 42, 0) == "20260102-030405_a-fox_seed42_01.png"
    assert frame_name(moment, "a fox", 0) == "20260102-030405_a-fox_frame_001.png"


def test_write_new_file_never_overwrites(tmp_path):
    first = write_new_file(tmp_path, "x.png", b"one")
    second = write_new_file(tmp_path, "x.png", b"two")
    assert (first.name, second.name) == ("x.png", "x-2.png")
    assert first.read_bytes() == b"one" and second.read_bytes() == b"two"
    assert leftover_temp_files(tmp_path) == []
