# sdxl_nb on a DGX: NGC PyTorch (its CUDA torch is kept), JupyterLab with token auth, offline HF cache.
ARG NGC_TAG=25.01
FROM nvcr.io/nvidia/pytorch:${NGC_TAG}-py3

ENV HF_HOME=/root/.cache/huggingface \
    HF_HUB_OFFLINE=1 \
    SDXL_NB_OUTPUT=/workspace/output_images \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/sdxl_nb
COPY . .
# Pin the container's own torch so resolving our dependencies can never replace it.
RUN python -c "import torch; print('torch==' + torch.__version__)" > /tmp/keep-torch.txt \
 && pip install --no-cache-dir -c /tmp/keep-torch.txt -e . \
 && python -c "import torch, sdxl_nb; print('torch', torch.__version__, 'sdxl_nb', sdxl_nb.__version__)"

# Mount the host's cache here: docker run -v ~/.cache/huggingface:/root/.cache/huggingface ...
VOLUME ["/root/.cache/huggingface", "/workspace/output_images"]
EXPOSE 8888
# Token auth stays on: JUPYTER_TOKEN if given, else a random token printed at start.
ENTRYPOINT ["/opt/sdxl_nb/scripts/docker-lab.sh"]
