#!/usr/bin/env bash
# Creates .venv (seeing system packages, so an NGC container's torch is reused) and installs the project.
# torch==2.13.0 is installed first only when no torch is importable: a bare "torch" requirement
# would otherwise pull the newest CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
venv=${SDXL_NB_VENV:-.venv}
stamp="$venv/.sdxl_nb-installed"

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv --system-site-packages "$venv"
fi
wanted=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
  exit 0
fi
if ! "$venv/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "setup: no torch found; installing torch==2.13.0"
  "$venv/bin/python" -m pip install -q "torch==2.13.0"
else
  echo "setup: reusing torch $("$venv/bin/python" -c 'import torch; print(torch.__version__)')"
fi
# The constraint keeps pip from replacing the torch just found while resolving the rest.
constraint=$(mktemp)
trap 'rm -f "$constraint"' EXIT
"$venv/bin/python" -c 'import torch; print("torch==" + torch.__version__)' >"$constraint"
"$venv/bin/python" -m pip install -q -c "$constraint" -e ".[test]"
echo "$wanted" >"$stamp"
echo "setup: done ($venv)"
