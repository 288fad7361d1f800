#!/usr/bin/env bash
# Set-up for the real-browser test (`make e2e`): Debian's chromium and chromium-driver, then selenium
# (the project's `e2e` extra) in .venv. Selenium drives the system browser; nothing is downloaded by it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${SDXL_NB_VENV:-.venv}

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "setup-e2e: chromium and chromium-driver are missing; install them (apt-get install chromium chromium-driver)" >&2
    exit 1
  fi
fi
if ! "$venv/bin/python" -c "import selenium" >/dev/null 2>&1; then
  constraint=$(mktemp)
  trap 'rm -f "$constraint"' EXIT
  # Without the local label ("+cu130"), as in setup.sh: pip's site constraints may cap torch at "<=2.14.1".
  "$venv/bin/python" -c 'import torch; print("torch==" + torch.__version__.split("+")[0])' >"$constraint"
  "$venv/bin/python" -m pip install -q -c "$constraint" -e ".[test,e2e]"
fi
echo "setup-e2e: $(/usr/bin/chromium --version 2>/dev/null | head -1), selenium $("$venv/bin/python" -c 'import selenium; print(selenium.__version__)')"
