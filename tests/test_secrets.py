"""Secrets from the environment never reach jobs.log, PNG metadata, app_events.log or an error line."""

import subprocess

import pytest
from PIL import Image

from sdxl_nb.errors import GenerationError
from sdxl_nb.record.secrets import is_secret_name, mask, mask_data, secret_values, without_credentials
from tests.conftest import PYTHON, python_env

SECRET = "sk-live-0123456789abcdef"


@pytest.mark.parametrize("name, secret", [
    ("LAMBDA_API_KEY", True), ("AWS_SECRET_ACCESS_KEY", True), ("HF_TOKEN", True), ("MY_SERVICE_API_KEY", True),
    ("COMFY_TOKEN", True), ("DB_PASSWORD", True), ("CLIENT_SECRET", True), ("hf_token", True),
    ("PATH", False), ("HOME", False), ("SDXL_NB_OUTPUT", False), ("TOKENIZERS_PARALLELISM", False),
])
def test_secret_names(name, secret):
    assert is_secret_name(name) is secret


def test_mask_replaces_values_longest_first_and_ignores_short_ones():
    env = {"A_API_KEY": "abcdefgh", "B_TOKEN": "abcdefgh-longer", "C_TOKEN": "1", "PATH": "abcdefghij"}
    assert secret_values(env) == {"abcdefgh-longer": "B_TOKEN", "abcdefgh": "A_API_KEY"}
    assert mask("key abcdefgh-longer and abcdefgh, token 1", env) == "key <B_TOKEN masked> and <A_API_KEY masked>, token 1"
    data = {"error": "abcdefgh", "list": ["x abcdefgh", 3, None], "abcdefgh": ("abcdefgh",)}
    assert mask_data(data, env) == {"error": "<A_API_KEY masked>", "list": ["x <A_API_KEY masked>", 3, None],
                                    "<A_API_KEY masked>": ("<A_API_KEY masked>",)}
    assert mask_data(data, {}) is data  # nothing to mask: nothing copied


def test_url_credentials_and_given_values_are_masked_too():
    env = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEY01"}
    text = "GET https://lab:hunter2@comfy:8188/x as AKIAEXAMPLEKEY01, user lab, password hunter2, git://tok@host"
    assert mask(text, env, given=("hunter2", "lab")) == (
        "GET https://***@comfy:8188/x as <AWS_ACCESS_KEY_ID masked>, user lab, password ***, git://***@host")
    assert mask("mail me at me@example.com", {}) == "mail me at me@example.com"  # no scheme://, no credentials
    data = {"server": "http://u:p@h/", "seeds": [1, 2]}
    assert mask_data(data, {}) == {"server": "http://***@h/", "seeds": [1, 2]}
    assert without_credentials("https://lab:hunter2@comfy:8188/x") == "https://comfy:8188/x"
    assert without_credentials("s3://bucket/prefix") == "s3://bucket/prefix"


def everything_written(folder):
    """Every byte the job left in its folder, PNG text chunks decoded."""
    texts = []
    for path in folder.rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes().decode("utf-8", "replace"))
            if path.suffix == ".png":
                with Image.open(path) as image:
                    texts += list(image.text.values())
    return "\n".join(texts)


def test_a_secret_in_an_exception_never_reaches_the_log(run, engine, tmp_path, monkeypatch):
    monkeypatch.setenv("REMOTE_API_KEY", SECRET)

    def leak(*args, **kwargs):
        raise RuntimeError(f"401 Unauthorized for key {SECRET}")

    monkeypatch.setattr("sdxl_nb.backends.local.run_loop.RunLoop.run", leak)
    with pytest.raises(GenerationError) as caught:
        run(prompt="remote", out_dir=tmp_path)
    assert SECRET not in str(caught.value) and "<REMOTE_API_KEY masked>" in str(caught.value)
    written = everything_written(tmp_path)
    assert "401 Unauthorized for key <REMOTE_API_KEY masked>" in written
    assert SECRET not in written


def test_a_secret_in_warnings_or_the_prompt_never_reaches_pngs(run, tmp_path, monkeypatch):
    from sdxl_nb.jobs import kinds

    monkeypatch.setenv("LAMBDA_API_KEY", SECRET)
    real = kinds.check_request
    monkeypatch.setattr(kinds, "check_request", lambda *a, **k: [*real(*a, **k), f"remote backend key {SECRET}"])
    result = run(prompt=f"a cat {SECRET}", batch=2, out_dir=tmp_path)
    assert len(result.paths) == 2 and all(p.exists() for p in result.paths)
    assert all("lambda-api-key-masked" in p.name for p in result.paths)
    written = everything_written(tmp_path)
    assert SECRET not in written
    assert "remote backend key <LAMBDA_API_KEY masked>" in written and "a cat <LAMBDA_API_KEY masked>" in written
    assert SECRET not in str(result.record)


@pytest.mark.slow
def test_cli_errors_are_masked(tmp_path):
    result = subprocess.run([PYTHON, "-m", "sdxl_nb", "generate", "--prompt", "x", "--init-image",
                             f"/nonexistent/{SECRET}.png", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=120, env=python_env({"HF_TOKEN": SECRET}))
    assert result.returncode == 2
    assert result.stderr == ("sdxl-nb generate: error: init image '/nonexistent/<HF_TOKEN masked>.png' does not exist "
                             "or is not a file\n")
