"""logs/app_events.log cannot be forged: user text never starts a line of its own."""

import pytest

from sdxl_nb.record import events
from sdxl_nb.record.history import load_event_line, load_times
from sdxl_nb.record.joblog import read_records

FAKE_RECOVERED = "[2030-01-01 00:00:00] RECOVERED in /elsewhere (before job x)"
FAKE_LOAD = "[2030-01-01 00:00:00] " + load_event_line("tiny-sdxl", "r", 999.0, "cpu", "float32")


@pytest.mark.parametrize("breaker", ["\n", "\r", "\r\n", "\x85", "\u2028", "\u2029", "\x0b", "\x0c"])
def test_a_line_break_in_user_text_stays_inside_its_line(tmp_path, breaker):
    events.write_event(tmp_path, "MODEL=x", f"PROMPT: a cat{breaker}{FAKE_RECOVERED}{breaker}{FAKE_LOAD}")
    text = events.events_log_path(tmp_path).read_text(encoding="utf-8")
    lines = text.splitlines()  # splits at every breaker Python knows, \x85 and \u2028 included
    assert len(lines) == 2 and lines[1].startswith("    PROMPT: a cat") and FAKE_RECOVERED in lines[1]
    assert not any(line.startswith("[2030") for line in lines)
    assert load_times(tmp_path, "tiny-sdxl") == []  # the forged load time is not read back


def test_escapes_are_readable_and_ordinary_text_is_untouched():
    assert events.escape("a\nb\rc\x1bd\u202ee\tf") == "a\\nb\\rc\\u001bd\\u202ee\tf"
    assert events.escape("un chat, 猫, 🐈‍⬛ (cat:1.2) \\(x\\)") == "un chat, 猫, 🐈‍⬛ (cat:1.2) \\(x\\)"


def test_a_forging_prompt_through_a_job_keeps_one_block(run, tmp_path):
    out = tmp_path / "out"
    prompt = f"a cat\n{FAKE_RECOVERED}\r\n{FAKE_LOAD}"
    result = run(prompt=prompt, out_dir=out)
    text = (out / "logs" / "app_events.log").read_text(encoding="utf-8")
    assert not any(line.startswith("[2030") for line in text.splitlines())
    assert "PROMPT: a cat\\n[2030-01-01 00:00:00] RECOVERED" in text
    assert read_records(out / "jobs.log")[0]["prompt"] == prompt == result.record["prompt"]  # the record is exact
