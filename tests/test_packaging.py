"""Set-up files agree with each other: pyproject vs environment.yml, Docker entry, README quick start, CI."""

import json
import os
import re
import subprocess
import tomllib

import pytest
import yaml

from tests.conftest import REPO


def _names(requirements):
    return {re.split(r"[<>=!~ \[]", r, maxsplit=1)[0].lower().replace("_", "-"): r for r in requirements}


def test_environment_yml_has_the_same_dependencies_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    env = yaml.safe_load((REPO / "environment.yml").read_text(encoding="utf-8"))
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    pip_requirements = [r for r in pip_lists[0] if not r.startswith("-e")]
    assert _names(pip_requirements) == _names(project["dependencies"])
    for required in ("torch", "diffusers", "transformers", "accelerate", "ipywidgets", "jupyterlab", "pillow",
                     "pandas", "matplotlib"):
        assert required in _names(project["dependencies"])


def test_dockerfile_keeps_torch_token_auth_and_offline_cache():
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM nvcr\.io/nvidia/pytorch:\$\{NGC_TAG\}-py3$", text, re.M)
    assert re.search(r"^ARG NGC_TAG=\d\d\.\d\d$", text, re.M)
    assert "HF_HUB_OFFLINE=1" in text and "/root/.cache/huggingface" in text
    assert "-c /tmp/keep-torch.txt" in text  # the container's torch is pinned, never replaced
    assert not re.search(r"token=(''|\"\")", text)


def test_docker_entry_always_sets_a_token(tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "jupyter").write_text('#!/bin/sh\necho "TOKEN=$JUPYTER_TOKEN ARGS=$*"\n', encoding="utf-8")
    (fake_bin / "jupyter").chmod(0o755)
    (fake_bin / "python").symlink_to(subprocess.run(["which", "python3"], capture_output=True, text=True).stdout.strip())
    env = {"PATH": f"{fake_bin}:{os.environ['PATH']}"}
    generated = subprocess.run([str(REPO / "scripts" / "docker-lab.sh")], capture_output=True, text=True, env=env)
    token = re.search(r"TOKEN=(\S+) ARGS=", generated.stdout)
    assert token and len(token.group(1)) >= 32
    assert "--ip=0.0.0.0" in generated.stdout
    given = subprocess.run([str(REPO / "scripts" / "docker-lab.sh")], capture_output=True, text=True,
                           env={**env, "JUPYTER_TOKEN": "my-secret-token"})
    assert "TOKEN=my-secret-token ARGS=" in given.stdout


def test_readme_quick_start_is_two_make_commands_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quick, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["make lab", "make test"]
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^lab: setup$", makefile, re.M) and re.search(r"^test: ", makefile, re.M)
    assert "jupyter lab --notebook-dir=notebooks" in makefile
    assert re.search(r"^make test$", (REPO / ".ci" / "run").read_text(encoding="utf-8"), re.M)


def test_setup_installs_pinned_torch_only_when_missing():
    script = (REPO / "scripts" / "setup.sh").read_text(encoding="utf-8")
    check = script.index('if ! "$venv/bin/python" -c "import torch"')
    install = script.index('pip install -q "torch==2.14.1" "torchvision==0.29.1"')
    assert check < install < script.index("-e \".[test]\"")
    assert "--system-site-packages" in script


# A stand-in for python3: `-c "import torch"` answers from $HAS_TORCH, `-m venv` makes a venv whose python
# answers every call (pip included) with success; each `-m venv` call is logged.
FAKE_PYTHON = """#!/bin/sh
if [ "$1" = "-c" ] && [ "$2" = "import torch" ]; then exit "$HAS_TORCH"; fi
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  echo "$*" >>"$VENV_LOG"
  for dir; do :; done
  rm -rf "$dir" && mkdir -p "$dir/bin"
  case "$*" in *--system-site-packages*) site=true;; *) site=false;; esac
  echo "include-system-site-packages = $site" >"$dir/pyvenv.cfg"
  printf '#!/bin/sh\\ncase "$*" in *print*) echo torch==2.14.1;; esac\\n' >"$dir/bin/python"
  chmod +x "$dir/bin/python"
fi
"""


def test_setup_sees_system_packages_only_to_reuse_an_installed_torch(tmp_path):
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON, encoding="utf-8")
    fake.chmod(0o755)
    venv, log = tmp_path / "venv", tmp_path / "venv.log"

    def setup(has_torch: bool) -> str:
        env = {**os.environ, "PYTHON": str(fake), "SDXL_NB_VENV": str(venv), "VENV_LOG": str(log),
               "HAS_TORCH": "0" if has_torch else "1"}
        done = subprocess.run([str(REPO / "scripts" / "setup.sh")], capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        return (venv / "pyvenv.cfg").read_text(encoding="utf-8").strip()

    # No torch: an isolated venv, so a dependency missing from pyproject.toml cannot hide among system packages.
    assert setup(has_torch=False) == "include-system-site-packages = false"
    assert setup(has_torch=False) == "include-system-site-packages = false"
    assert log.read_text(encoding="utf-8").count("-m venv") == 1  # kept, not made again
    # An installed torch (an NGC container's) is reused: the venv made the other way is made again.
    assert setup(has_torch=True) == "include-system-site-packages = true"
    calls = log.read_text(encoding="utf-8").splitlines()
    assert len(calls) == 2 and "--clear" in calls[1] and "--system-site-packages" in calls[1]


def test_make_lab_starts_jupyterlab_on_the_notebooks_with_token_auth(tmp_path):
    """The exact command `make lab` runs (after set-up) starts JupyterLab, as root too, and keeps token auth."""
    import shlex
    import socket
    import sys
    import time
    import urllib.error
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dry = subprocess.run(["make", "-n", "lab", f"LAB_PORT={port}"], cwd=REPO, capture_output=True, text=True)
    line = next(x for x in dry.stdout.splitlines() if " lab --notebook-dir=notebooks" in x)
    args = shlex.split(line)
    assert args[0].endswith("/bin/jupyter") and ("--allow-root" in args) == (os.geteuid() == 0)
    env = {**os.environ, "JUPYTER_TOKEN": "lab-test-token", "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    server = subprocess.Popen([sys.executable, "-m", "jupyter", *args[1:]], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents/01_generate.ipynb"
                                            "?content=0&token=lab-test-token", timeout=5) as answer:
                    assert json.loads(answer.read())["name"] == "01_generate.ipynb"  # serves notebooks/
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None and time.monotonic() < deadline, "JupyterLab did not start"
                time.sleep(0.5)
        with pytest.raises(urllib.error.HTTPError) as refused:  # no token, no notebook
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents/01_generate.ipynb", timeout=5)
        assert refused.value.code == 403
    finally:
        server.terminate()
        server.wait(timeout=30)
