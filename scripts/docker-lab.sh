#!/usr/bin/env bash
# Container entry point: JupyterLab on 0.0.0.0 with token authentication always on.
set -euo pipefail
if [ -z "${JUPYTER_TOKEN:-}" ]; then
  JUPYTER_TOKEN=$(python -c "import secrets; print(secrets.token_urlsafe(32))")
  export JUPYTER_TOKEN
  echo "JUPYTER_TOKEN was not set; this session's token: ${JUPYTER_TOKEN}"
fi
exec jupyter lab --ip=0.0.0.0 --port=8888 --no-browser --allow-root \
  --notebook-dir=/opt/sdxl_nb/notebooks "$@"
