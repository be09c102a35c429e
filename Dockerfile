# TASeg DEEPaaS module image (AI4OS conventions): the API on port 5000, everything it
# needs inside, nothing downloaded at run time.
ARG tag=2.5.1-cuda12.4-cudnn9-runtime
FROM pytorch/pytorch:${tag}

LABEL maintainer="TASeg developers" \
      org.opencontainers.image.title="thermal-anomaly-segmenter" \
      org.opencontainers.image.licenses="BSD-3-Clause"

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    NO_ALBUMENTATIONS_UPDATE=1 \
    DATA_PATH=/srv/thermal-anomaly-segmenter/data \
    MODELS_PATH=/srv/thermal-anomaly-segmenter/models

WORKDIR /srv/thermal-anomaly-segmenter

# Install the dependencies first (cached layer); keep the base image's torch.
COPY requirements.txt constraints.txt ./
RUN python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > /tmp/torch.txt \
 && grep -v '^torch==' requirements.txt > /tmp/requirements.txt \
 && pip install -c /tmp/torch.txt -r /tmp/requirements.txt

COPY pyproject.toml VERSION README.md LICENSE cli.py ./
COPY thermal_anomaly_segmenter ./thermal_anomaly_segmenter
COPY api ./api
COPY models ./models
COPY data/samples ./data/samples
RUN pip install -c /tmp/torch.txt --no-deps -e . \
 && taseg predict data/samples/KA1_DJI_0_0095_R.npy.lz4 --out /tmp/smoke -q \
 && rm -rf /tmp/smoke

EXPOSE 5000
CMD ["deepaas-run", "--listen-ip", "0.0.0.0", "--listen-port", "5000"]
