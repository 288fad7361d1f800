"""`sdxl-nb audit`: exit 0 when intact and bit-exact, 1 with the problems listed, 2 on bad input; JSON."""

import json

import pytest

from sdxl_nb.cli import main
from tests.audit_jobs import copy_jobs, make_jobs


@pytest.fixture(scope="module")
def jobs_dir(engine, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli_audit") / "out"
    make_jobs(folder, engine)
    return folder


pytestmark = pytest.mark.usefixtures("kernel_engine")  # the CLI runs on the session's engine


def test_intact_log_with_bit_exact_reruns_exits_0(jobs_dir, capsys):
    assert main(["audit", str(jobs_dir), "--rerun", "all"]) == 0
    out = capsys.readouterr()
    assert "RESULT: intact and bit-exact" in out.out and "4 bit-exact" in out.out
    assert out.err.count("re-running job") == 3


def test_problems_exit_1_and_are_listed(jobs_dir, tmp_path, capsys):
    folder = copy_jobs(jobs_dir, tmp_path / "out")
    victim = sorted(folder.glob("*.png"))[0]
    victim.unlink()
    with open(folder / "jobs.log", "ab") as log:
        log.write(b'{"job_id": "torn')
    assert main(["audit", str(folder)]) == 1
    text = capsys.readouterr().out
    assert "RESULT: 2 problem(s)" in text
    assert f"missing image: {victim}" in text and "jobs.log:4: truncated line" in text


def test_json_report(jobs_dir, tmp_path, capsys):
    folder = copy_jobs(jobs_dir, tmp_path / "out")
    (folder / "stray.png").write_bytes(b"x")
    assert main(["audit", str(folder / "jobs.log"), "--rerun", "1", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["jobs"] == 3 and report["images"] == 4
    assert report["integrity"]["untracked"] == [str(folder / "stray.png")]
    assert [row["verdict"] for row in report["reruns"]] == ["bit-exact"]
    assert report["reruns"][0]["psnr_db"] == "inf" and report["reruns"][0]["mode"] == "inpaint"
    assert report["close_threshold"] == {"min_psnr_db": 40.0, "max_abs_diff": 8}


def _exit_code(argv):
    try:
        return main(argv)
    except SystemExit as exc:  # argparse usage errors exit from inside the parser
        return exc.code


@pytest.mark.parametrize("args, message", [
    (["/no/such/folder"], "'/no/such/folder' does not exist"),
    (["{folder}", "--rerun", "0"], "argument --rerun: '0' is not a job count"),
    (["{folder}", "--rerun", "some"], "argument --rerun: 'some' is not a job count"),
    (["{folder}", "--job", "nope"], "job id 'nope' matches no job"),
])
def test_bad_input_exits_2_with_one_line(jobs_dir, capsys, args, message):
    assert _exit_code(["audit", *[a.format(folder=jobs_dir) for a in args]]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert message in captured.err and "Traceback" not in captured.err
