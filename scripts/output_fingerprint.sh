#!/usr/bin/env bash
# Fingerprint what TASeg writes, to check that a refactoring changes no output byte.
#
#   scripts/output_fingerprint.sh REPO OUTDIR > before.txt   (on the old checkout)
#   scripts/output_fingerprint.sh REPO OUTDIR > after.txt    (on the new one)
#   diff before.txt after.txt
#
# Runs, with REPO's .venv: taseg synth (6 frames), taseg predict on the sample frame and the
# synthetic frames (default model on ONNX Runtime, the classical model, and PyTorch), and
# taseg build-dataset from single-band TIFFs and corridor masks made from the synthetic frames;
# prints one sha256 per written file (REPO's own path replaced by REPO in the JSON reports).
set -euo pipefail
repo=$(cd "$1" && pwd); out=$2
rm -rf "$out"; mkdir -p "$out"
cd "$repo"
export HF_HUB_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1 OMP_NUM_THREADS=1
T=.venv/bin/taseg
$T synth "$out/synth" --frames 6 --seed 5 >/dev/null
$T predict -q data/samples/KA1_DJI_0_0095_R.npy.lz4 "$out"/synth/manual_set/image/*/*.npy.lz4 \
  --out "$out/pred_default" >/dev/null
$T predict -q data/samples/KA1_DJI_0_0095_R.npy.lz4 --model-dir models/classical \
  --out "$out/pred_classical" >/dev/null
TASEG_BACKEND=torch $T predict -q data/samples/KA1_DJI_0_0095_R.npy.lz4 --out "$out/pred_torch" \
  >/dev/null
mkdir -p "$out/ds_tiffs" "$out/ds_corr"
.venv/bin/python - "$out" <<'PY'
import io
import sys
from pathlib import Path

import lz4.frame
import numpy as np
import tifffile

out = Path(sys.argv[1])
for p in sorted((out / "synth/manual_set/image").glob("*/*.npy.lz4")):
    a = np.load(io.BytesIO(lz4.frame.decompress(p.read_bytes())))
    stem = p.name[: -len(".npy.lz4")]
    tifffile.imwrite(out / "ds_tiffs" / f"{stem}.tif", a[..., 2], photometric="minisblack")
    corridor = (np.abs(a[..., 0] - a[..., 2]) < 1e-4).astype(np.uint8)
    np.save(out / "ds_corr" / f"{stem}.npy", corridor)
PY
$T build-dataset "$out/ds_tiffs" "$out/ds_corr" "$out/ds" >/dev/null 2>&1
grep -rlF "$repo" "$out" | xargs -r sed -i "s#$repo#REPO#g"
cd "$out" && find . -type f | sort | xargs sha256sum
