# TASeg DEEPaaS module image (AI4OS module conventions): the API on port 5000, the package,
# the default model and the sample frame inside; nothing is downloaded at run time.
#   docker build -t ai4oshub/thermal-anomaly-segmenter .
#   docker run -p 5000:5000 ai4oshub/thermal-anomaly-segmenter     # Swagger UI: /api
ARG tag=2.5.1-cuda12.4-cudnn9-runtime
FROM pytorch/pytorch:${tag}

LABEL maintainer="TASeg developers" \
      org.opencontainers.image.title="thermal-anomaly-segmenter" \
      org.opencontainers.image.description="Thermal Anomaly Segmenter (TASeg): leak detection in district heating systems" \
      org.opencontainers.image.source="https://github.com/ai4os-hub/thermal-anomaly-segmenter" \
      org.opencontainers.image.licenses="BSD-3-Clause"

# HF_HUB_OFFLINE: model folders are self-contained; a hub look-up would only slow start-up
# or fail on offline nodes. DATA_PATH/MODELS_PATH: the folders copied below (REMOTE_PATH keeps
# its default /storage/taseg, where the platform mounts remote storage).
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    LANG=C.UTF-8 \
    SHELL=/bin/bash \
    HF_HUB_OFFLINE=1 \
    NO_ALBUMENTATIONS_UPDATE=1 \
    DATA_PATH=/srv/thermal-anomaly-segmenter/data \
    MODELS_PATH=/srv/thermal-anomaly-segmenter/models

# deep-start is the AI4OS start script the platform calls (deepaas, JupyterLab, VS Code);
# it is fetched at build time like any package, never when the container runs. gcc: some
# DEEPaaS dependencies build from source on the PyTorch images (AI4OS template note).
RUN apt-get update \
 && apt-get install -y --no-install-recommends git gcc \
 && rm -rf /var/lib/apt/lists/* \
 && git clone --depth 1 https://github.com/ai4os/deep-start /srv/.deep-start \
 && ln -s /srv/.deep-start/deep-start.sh /usr/local/bin/deep-start

WORKDIR /srv/thermal-anomaly-segmenter

# Dependencies first (a cached layer); keep the base image's torch, whatever requirements pin.
COPY requirements.txt constraints.txt ./
RUN python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > /tmp/torch.txt \
 && grep -v '^torch==' requirements.txt > /tmp/requirements.txt \
 && pip install -c /tmp/torch.txt -r /tmp/requirements.txt

COPY pyproject.toml VERSION README.md LICENSE cli.py ./
COPY thermal_anomaly_segmenter ./thermal_anomaly_segmenter
COPY api ./api
COPY models ./models
# The sample frame travels with its licence text (data/samples holds both).
COPY data/samples ./data/samples
# Install, then prove the image works offline: predict on the sample with the default model.
RUN pip install -c /tmp/torch.txt --no-deps -e . \
 && taseg predict data/samples/KA1_DJI_0_0095_R.npy.lz4 --out /tmp/smoke -q \
 && rm -rf /tmp/smoke

# DEEPaaS API (5000); monitoring (6006) and JupyterLab (8888) as in every AI4OS module.
EXPOSE 5000 6006 8888

HEALTHCHECK --interval=60s --timeout=10s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/v2/', timeout=5)"

# Two workers: DEEPaaS runs each call in one worker process, so with one a prediction
# waits until a running training ends (tests/test_load.py checks it is answered).
CMD ["deepaas-run", "--listen-ip", "0.0.0.0", "--listen-port", "5000", "--workers", "2"]
