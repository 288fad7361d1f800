"""`accelerate launch` with two CPU processes runs every scenario exactly once, each record naming its rank."""

import json
import shutil
import subprocess

import pytest

from sdxl_nb.record.joblog import read_records
from tests.conftest import PYTHON, REPO, python_env

pytestmark = pytest.mark.slow


def isolated_network_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rn", PYTHON, str(REPO / "tests" / "netns_exec.py"), "/bin/true"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not isolated_network_available(),
                    reason="needs `unshare -rn` (a private network namespace) so the launcher binds nothing outside")
def test_accelerate_launch_splits_scenarios_across_two_processes(tmp_path):
    from sdxl_nb.config.tiny import ensure_tiny_model

    ensure_tiny_model()  # built once here, not raced by the two processes
    scenes = [{"name": f"scene-{i}", "prompt": f"scene {i}", "seed": i, "width": 64, "height": 64, "steps": 2}
              for i in range(4)]
    path = tmp_path / "scenarios_dgx.json"
    path.write_text(json.dumps(scenes), encoding="utf-8")
    out = tmp_path / "out"
    launch = [PYTHON, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_ip", "127.0.0.1",
              "--main_process_port", "29511", "-m", "sdxl_nb", "batch", str(path), "--out", str(out)]
    env = python_env({"SDXL_NB_DEVICE": "cpu", "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"})
    result = subprocess.run(["unshare", "-rn", PYTHON, str(REPO / "tests" / "netns_exec.py"), *launch],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    records = read_records(out / "jobs.log")
    assert sorted(r["scenario"]["name"] for r in records) == [s["name"] for s in scenes]  # each exactly once
    assert {r["distributed"]["rank"] for r in records} == {0, 1}
    assert all(r["distributed"]["world_size"] == 2 and r["distributed"]["device"] == "cpu" for r in records)
    assert all(r["status"] == "ok" and len(r["images"]) == 1 for r in records)
    # The summary is printed once, by the main process, and covers both ranks' scenarios.
    assert result.stdout.count("batch scenarios_dgx:") == 1
    assert "4 scenario(s): 4 ok" in result.stdout
    assert "[rank 0/2 cpu]" in result.stderr and "[rank 1/2 cpu]" in result.stderr
