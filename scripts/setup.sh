#!/usr/bin/env bash
# Creates .venv and installs the project; the venv sees system packages only to reuse an installed torch.
# Where the chosen python has no torch the venv is isolated, so a dependency missing from pyproject.toml
# fails here instead of being found silently among the system's packages.
# torch==2.14.1 with torchvision==0.29.1 (a pair PyPI's wheels agree on; the upscaler library needs
# torchvision) is installed first only when no torch is importable: a bare "torch" requirement would
# otherwise pull whatever build is newest.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
venv=${SDXL_NB_VENV:-.venv}
stamp="$venv/.sdxl_nb-installed"

# Decided when the venv is made: an NGC container's torch is reused through the system site packages.
if "$python" -c "import torch" >/dev/null 2>&1; then
  system_site=true
  venv_flags=(--system-site-packages)
else
  system_site=false
  venv_flags=()
fi
# A venv made the other way (an older set-up, or torch since installed or removed) is made again.
if [ -f "$venv/pyvenv.cfg" ] && ! grep -qx "include-system-site-packages = $system_site" "$venv/pyvenv.cfg"; then
  echo "setup: re-creating $venv (include-system-site-packages must be $system_site)"
  "$python" -m venv --clear "${venv_flags[@]}" "$venv"
elif [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "${venv_flags[@]}" "$venv"
fi
wanted=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
  exit 0
fi
if ! "$venv/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "setup: no torch found; installing torch==2.14.1 torchvision==0.29.1"
  "$venv/bin/python" -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
else
  echo "setup: reusing torch $("$venv/bin/python" -c 'import torch; print(torch.__version__)')"
fi
# The constraint keeps pip from replacing the torch just found while resolving the rest. Without its
# local label ("+cu130"): "==2.14.1" still matches the installed build, and a "<=2.14.1" cap beside it
# (pip's site constraints) would not.
constraint=$(mktemp)
trap 'rm -f "$constraint"' EXIT
"$venv/bin/python" -c 'import torch; print("torch==" + torch.__version__.split("+")[0])' >"$constraint"
"$venv/bin/python" -m pip install -q -c "$constraint" -e ".[test]"
echo "$wanted" >"$stamp"
echo "setup: done ($venv)"
