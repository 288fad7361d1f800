"""One-line errors: a library message that starts with blank lines still gives a job and the CLI a reason."""

import pytest
from diffusers.utils.import_utils import SCIPY_IMPORT_ERROR

from sdxl_nb.errors import GenerationError, one_line
from sdxl_nb.record.joblog import read_records

# diffusers' own text: it starts with a newline, so its first line is empty.
SCIPY_MESSAGE = SCIPY_IMPORT_ERROR.format("LMSDiscreteScheduler")
EXPECTED = "LMSDiscreteScheduler requires the scipy library but it was not found in your environment. " \
           "You can install it with pip: `pip install"


@pytest.mark.parametrize("exc, line", [
    (ValueError("bad width"), "bad width"),
    (ValueError("  first  \nsecond"), "first"),
    (ImportError("\n\n  needs scipy \nmore"), "needs scipy"),
    (ImportError(SCIPY_MESSAGE), EXPECTED),
    (RuntimeError(""), "RuntimeError"),
    (RuntimeError("\n \n"), "RuntimeError"),
    (KeyError("k"), "'k'"),
])
def test_one_line_is_the_first_non_empty_line_else_the_type(exc, line):
    assert one_line(exc) == line


@pytest.fixture
def scipy_missing(monkeypatch, engine):
    """The kernel engine is the shared one, and making a scheduler fails the way diffusers does without scipy."""
    from sdxl_nb.backends.local import core

    def missing(*_args, **_kwargs):
        raise ImportError(SCIPY_MESSAGE)

    monkeypatch.setattr(core, "_ENGINE", engine)
    monkeypatch.setattr(core.Engine, "make_scheduler", staticmethod(missing))


def test_a_job_failing_with_a_blank_first_line_records_its_reason(scipy_missing, run, tmp_path):
    with pytest.raises(GenerationError) as failed:
        run(prompt="lms", scheduler="LMS", out_dir=tmp_path)
    assert str(failed.value) == EXPECTED
    [record] = read_records(tmp_path / "jobs.log")
    assert record["status"] == "failed" and record["error"] == EXPECTED


def test_the_cli_prints_the_reason_of_such_a_failure(scipy_missing, tmp_path, capsys):
    from sdxl_nb.cli import EXIT_FAILED, main

    code = main(["generate", "--prompt", "lms", "--scheduler", "LMS", "--width", "64", "--height", "64",
                 "--steps", "2", "--out", str(tmp_path)])
    assert code == EXIT_FAILED
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"sdxl-nb generate: failed: {EXPECTED}"
    [record] = read_records(tmp_path / "jobs.log")
    assert record["error"] == EXPECTED
