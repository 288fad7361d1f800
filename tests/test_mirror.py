"""S3 mirroring against a local S3-compatible server (moto's): images and records copied, secrets never shown."""

import json

import pytest

from sdxl_nb.cli import main
from sdxl_nb.cloud.mirror import S3Mirror, parse_s3_url
from sdxl_nb.errors import InputError
from sdxl_nb.record.joblog import read_records
from sdxl_nb.record.secrets import mask

SECRET = "wJalrXUtnFEMI-test-secret-value"
ACCESS = "AKIATESTACCESSKEY01"


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, monkeypatch, request):
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "SDXL_NB_S3_URL", "SDXL_NB_S3_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    name = "lab-" + request.node.name.replace("_", "-")[:40].lower().strip("-")
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


def test_a_job_is_mirrored_images_and_record(run, bucket, s3_endpoint, tmp_path):
    mirror = S3Mirror(f"s3://{bucket}/lab/run1", endpoint_url=s3_endpoint)
    result = run(prompt="mirrored", batch=2, out_dir=tmp_path, mirror=mirror)
    assert result.mirror_error is None
    for path in result.paths:
        assert mirror.read(path.name) == path.read_bytes()
    (local,) = read_records(tmp_path / "jobs.log")
    assert mirror.records() == [local]
    keys = mirror.existing_keys()
    assert keys == {f"lab/run1/{p.name}" for p in result.paths} | {f"lab/run1/records/{local['job_id']}.json"}


def test_the_environment_configures_the_mirror(run, bucket, s3_endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("SDXL_NB_S3_URL", f"s3://{bucket}")
    monkeypatch.setenv("SDXL_NB_S3_ENDPOINT", s3_endpoint)
    result = run(prompt="from env", out_dir=tmp_path)
    assert S3Mirror(f"s3://{bucket}").read(result.paths[0].name) == result.paths[0].read_bytes()
    assert run(prompt="not mirrored", out_dir=tmp_path / "b", mirror=False).mirror_error is None
    assert len(S3Mirror(f"s3://{bucket}").records()) == 1


def test_a_failed_mirror_keeps_the_job_and_says_so_without_secrets(run, bucket, s3_endpoint, tmp_path):
    mirror = S3Mirror("s3://no-such-bucket-here/x", endpoint_url=s3_endpoint.replace("http://", f"http://{ACCESS}@"))
    result = run(prompt="kept locally", out_dir=tmp_path, mirror=mirror)
    assert result.status == "ok" and result.paths[0].exists()
    assert "NoSuchBucket" in result.mirror_error and "\n" not in result.mirror_error
    assert read_records(tmp_path / "jobs.log")[0]["status"] == "ok"
    events = (tmp_path / "logs" / "app_events.log").read_text(encoding="utf-8")
    assert "S3 MIRROR FAILED" in events
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SECRET.encode() not in data and ACCESS.encode() not in data, path
    assert ACCESS not in result.mirror_error


def test_sync_copies_what_is_missing_then_nothing(run, bucket, s3_endpoint, tmp_path, capsys):
    first = run(prompt="one", out_dir=tmp_path, mirror=False)
    run(prompt="two", batch=2, out_dir=tmp_path, mirror=False)
    url = f"s3://{bucket}/backfill"
    assert main(["mirror", "--out", str(tmp_path), "--s3-url", url, "--s3-endpoint", s3_endpoint]) == 0
    assert "mirrored 5 file(s)" in capsys.readouterr().out  # 3 images + 2 records
    assert main(["mirror", "--out", str(tmp_path), "--s3-url", url, "--s3-endpoint", s3_endpoint]) == 0
    assert "mirrored 0 file(s)" in capsys.readouterr().out
    mirror = S3Mirror(url, endpoint_url=s3_endpoint)
    assert mirror.read("jobs.log") == (tmp_path / "jobs.log").read_bytes()
    assert [r["job_id"] for r in mirror.records()] == [r["job_id"] for r in read_records(tmp_path / "jobs.log")]
    assert json.loads(mirror.read(f"records/{first.record['job_id']}.json")) == read_records(tmp_path / "jobs.log")[0]


def test_bad_urls_and_missing_configuration_are_input_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SDXL_NB_S3_URL", raising=False)
    assert parse_s3_url("s3://bucket/a/b/") == ("bucket", "a/b")
    for bad in ("http://bucket/x", "s3://", "s3://user:pw@bucket/x"):
        with pytest.raises(InputError) as error:
            parse_s3_url(bad)
        assert "pw" not in str(error.value)
    (tmp_path / "jobs.log").write_text("", encoding="utf-8")
    assert main(["mirror", "--out", str(tmp_path)]) == 2
    assert "no bucket given" in capsys.readouterr().err


def test_masking_removes_credentials(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    text = f"failed with {SECRET} at http://user:pass@minio:9000/x and token abcdef"
    assert mask(text, given=("abcdef",)) == ("failed with <AWS_SECRET_ACCESS_KEY masked> at http://***@minio:9000/x "
                                            "and token ***")
