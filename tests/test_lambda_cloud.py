"""Lambda Cloud lifecycle against a fake API: the client, and a context manager that always terminates."""

import pytest

from sdxl_nb.backends.comfy.backend import ComfyBackend
from sdxl_nb.cloud.lambda_cloud import LambdaCloud, LambdaError, comfy_on_lambda
from sdxl_nb.errors import InputError
from sdxl_nb.jobs.batch import run_batch
from sdxl_nb.record.joblog import read_records
from tests.fake_comfy import FakeComfy
from tests.fake_lambda import FakeLambda
from tests.local_server import LocalServer

KEY = "secret_lambda_key_0123456789abcdef"
CKPT = "sd_xl_base_1.0.safetensors"


@pytest.fixture
def cloud_api(monkeypatch):
    monkeypatch.setenv("LAMBDA_API_KEY", KEY)
    fake = FakeLambda(KEY)
    with LocalServer(fake.app()) as server:
        monkeypatch.setenv("SDXL_NB_LAMBDA_API", server.url)
        yield fake


@pytest.fixture
def comfy():
    fake = FakeComfy()
    with LocalServer(fake.app()) as server:
        yield fake, server


def lifecycle(comfy_server, **options):
    return comfy_on_lambda("gpu_1x_a10", "us-east-1", ["lab-key"], poll_s=0.02, ready_timeout_s=5,
                           comfy_url=f"http://{{ip}}:{comfy_server.port}", checkpoint=CKPT, **options)


def test_client_lists_launches_waits_and_terminates(cloud_api):
    client = LambdaCloud(backoff_s=0.01)
    assert client.list_instances() == []
    (instance_id,) = client.launch("gpu_1x_a10", "us-east-1", ["lab-key"], name="probe")
    assert cloud_api.launched[0] == {"instance_type_name": "gpu_1x_a10", "region_name": "us-east-1",
                                     "ssh_key_names": ["lab-key"], "quantity": 1, "name": "probe"}
    seen = []
    instance = client.wait_until_active(instance_id, poll_s=0.01, on_status=seen.append)
    assert instance["ip"] == "127.0.0.1" and seen == ["booting", "active"]
    client.terminate([instance_id])
    assert cloud_api.terminated == [instance_id] and cloud_api.running() == []
    assert KEY not in repr(client)


def test_api_errors_are_one_line_without_the_key(cloud_api, monkeypatch):
    cloud_api.refuse_launch = True
    client = LambdaCloud(backoff_s=0.01)
    with pytest.raises(LambdaError, match="HTTP 400 instance-operations/launch/insufficient-capacity Not enough"):
        client.launch("gpu_8x_h100", "us-east-1", ["k"])
    monkeypatch.setenv("LAMBDA_API_KEY", "wrong_key_value_xyz")
    with pytest.raises(LambdaError) as refused:
        LambdaCloud(backoff_s=0.01).list_instances()
    assert "global/invalid-api-key" in str(refused.value) and "wrong_key_value_xyz" not in str(refused.value)


def test_the_key_comes_from_the_environment_only(monkeypatch):
    monkeypatch.delenv("LAMBDA_API_KEY", raising=False)
    with pytest.raises(InputError, match="LAMBDA_API_KEY is not set"):
        LambdaCloud()


def test_context_manager_yields_a_ready_backend_and_terminates_after_success(cloud_api, comfy, tmp_path):
    fake_comfy, comfy_server = comfy
    stages = []
    with lifecycle(comfy_server, on_stage=stages.append) as backend:
        assert isinstance(backend, ComfyBackend) and cloud_api.running()
        result = backend.generate(prompt="on lambda", width=64, height=64, steps=2, seed=4, out_dir=tmp_path)
        assert result.status == "ok" and result.record["backend"]["server"] == comfy_server.url
    assert cloud_api.running() == [] and len(cloud_api.terminated) == 1
    assert any(s.startswith("waiting for ComfyUI") for s in stages) and stages[-1].startswith("terminated")
    assert cloud_api.launched[0]["name"].startswith("sdxl-nb-")


def test_a_failure_in_the_middle_of_a_batch_still_terminates(cloud_api, comfy, tmp_path):
    fake_comfy, comfy_server = comfy
    scenarios = [{"name": f"s{i}", "prompt": f"scene {i}", "seed": i, "width": 64, "height": 64, "steps": 2}
                 for i in range(3)]

    def on_scenario(outcome, number, total):
        if number == 2:
            raise RuntimeError("the notebook cell failed mid-batch")

    with pytest.raises(RuntimeError, match="mid-batch"):
        with lifecycle(comfy_server) as backend:
            run_batch(scenarios, batch_id="cloud", out_dir=tmp_path, generate=backend.generate,
                      on_scenario=on_scenario)
    assert cloud_api.running() == [] and len(cloud_api.terminated) == 1
    assert [r["scenario"]["name"] for r in read_records(tmp_path / "jobs.log")] == ["s0", "s1"]


def test_a_failing_scenario_on_the_server_is_recorded_and_the_batch_goes_on(cloud_api, comfy, tmp_path):
    fake_comfy, comfy_server = comfy
    scenarios = [{"name": "ok-1", "prompt": "a", "seed": 1, "width": 64, "height": 64, "steps": 2},
                 {"name": "bad", "prompt": "b", "seed": 2, "width": 64, "height": 64, "steps": 2, "scheduler": "LMS"},
                 {"name": "ok-2", "prompt": "c", "seed": 3, "width": 64, "height": 64, "steps": 2}]
    fake_comfy.fail_in_node = None
    with lifecycle(comfy_server) as backend:
        original = backend.client.queue_prompt

        def queue(graph):
            if any(n["inputs"].get("sampler_name") == "lms" for n in graph.values()):
                fake_comfy.fail_in_node = "KSampler"
            else:
                fake_comfy.fail_in_node = None
            return original(graph)

        backend.client.queue_prompt = queue
        summary = run_batch(scenarios, batch_id="cloud", out_dir=tmp_path, generate=backend.generate)
    assert [o.status for o in summary.outcomes] == ["ok", "failed", "ok"]
    assert "CUDA out of memory" in summary.outcomes[1].error
    assert cloud_api.running() == []


def test_ctrl_c_inside_the_block_terminates(cloud_api, comfy):
    _fake, comfy_server = comfy
    with pytest.raises(KeyboardInterrupt):
        with lifecycle(comfy_server):
            raise KeyboardInterrupt
    assert cloud_api.running() == [] and len(cloud_api.terminated) == 1


def test_comfy_that_never_answers_times_out_and_terminates(cloud_api):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(LambdaError, match="did not answer within 0.3 s"):
        with comfy_on_lambda("gpu_1x_a10", "us-east-1", ["k"], poll_s=0.02, ready_timeout_s=0.3,
                             comfy_url=f"http://{{ip}}:{closed_port}"):
            pytest.fail("must not be reached")
    assert cloud_api.running() == [] and len(cloud_api.terminated) == 1


def test_a_launch_whose_answer_is_lost_is_found_by_name_and_terminated(cloud_api, comfy):
    _fake, comfy_server = comfy
    cloud_api.lose_launch_answer = True
    with pytest.raises(LambdaError, match="HTTP 500"):
        with lifecycle(comfy_server):
            pytest.fail("must not be reached")
    assert len(cloud_api.instances) == 1 and cloud_api.running() == []
