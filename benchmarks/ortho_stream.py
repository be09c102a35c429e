"""Streamed orthomosaic predict vs separate frames, per corridor pixel, and peak RSS.

    .venv/bin/python benchmarks/ortho_stream.py --size 4000 --spacing 1000

Writes a ``size x size`` float32 GeoTIFF (EPSG:25832, 0.25 m) window by window and a pipe
network (a grid of lines every ``spacing`` pixels, GeoPackage), then in one process with the
default model: (1) ``predict_ortho`` streams it (corridor 8 m); (2) the same corridor is
predicted as separate 512 x 640 frames (every frame window that touches the corridor, whole
frames in batches through ``Segmenter.predict_batch``, as a drone survey's frames would run). Prints
seconds per million corridor pixels of both, their ratio, and the peak RSS of the streaming
beyond the loaded model (``ru_maxrss`` after streaming minus RSS after loading and one warm
frame), and the number of 512 x 640 forward passes and their mean time in both paths, and
their ratio per corridor pixel (the machine-independent part of the comparison; the frames
cover only the whole 512 x 640 windows of the raster, hence per corridor pixel). The
issue's size is 40000; pass what the machine's disk and time allow.

The two paths run in ``--rounds`` interleaved rounds (stream, frames; frames, stream; ...)
in one process, so that the load of a shared machine weighs on both alike; each round's
ratio is printed, with their median; a third path streams writing only the JSON report
(the frames produce no files), to split the GIS outputs' cost off, and a fourth predicts the
frames writing each one's five files as ``taseg predict`` does (outputs against outputs).
The frames' time counts
composing and predicting them (no files); reading their windows and rasterising their
corridors is printed apart, and a second ratio counts it in (the stream's time counts
everything it does: both read passes, the corridor, all six output files).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

MODEL = ROOT / "models" / "unet_mobilenetv2_synthetic"
GSD = 0.25
ORIGIN = (456000.0, 5430000.0)


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_inputs(folder: Path, size: int, spacing: int) -> tuple[Path, Path]:
    import pyogrio.raw
    import rasterio
    import shapely
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    transform = from_origin(*ORIGIN, GSD, GSD)
    ortho = folder / "ortho.tif"
    rng = np.random.default_rng(0)
    with rasterio.open(ortho, "w", driver="GTiff", width=size, height=size, count=1,
                       dtype="float32", crs="EPSG:25832", transform=transform, tiled=True,
                       blockxsize=512, blockysize=512, bigtiff="if_safer") as ds:
        for r in range(0, size, 1024):
            h = min(1024, size - r)
            ds.write(rng.normal(-3.0, 0.3, (h, size)).astype(np.float32), 1,
                     window=Window(0, r, size, h))
    lines = []
    for k in range(spacing // 2, size, spacing):
        lines.append(shapely.LineString([transform @ (0, k), transform @ (size, k)]))
        lines.append(shapely.LineString([transform @ (k, 0), transform @ (k, size)]))
    pipes = folder / "pipes.gpkg"
    pyogrio.raw.write(pipes, shapely.to_wkb(np.array(lines, dtype=object)),
                      field_data=[np.arange(len(lines))], fields=["pipe_id"],
                      crs="EPSG:25832", geometry_type="LineString", driver="GPKG")
    return ortho, pipes


class ForwardCounter:
    """Counts the network inputs (tiles or frames), their pixels and the seconds of
    ``Segmenter._forward``."""

    def __init__(self, segmenter) -> None:
        self.inputs, self.seconds, self.pixels = 0, 0.0, 0
        forward = segmenter._forward

        def counted(batch):
            t0 = time.perf_counter()
            out = forward(batch)
            self.seconds += time.perf_counter() - t0
            self.inputs += len(batch)
            self.pixels += int(np.prod(batch.shape[:3]))
            return out

        segmenter._forward = counted

    def take(self) -> tuple[int, float]:
        counts = (self.inputs, self.seconds)
        self.inputs, self.seconds = 0, 0.0
        return counts

    def take_pixels(self) -> int:
        pixels, self.pixels = self.pixels, 0
        return pixels


def separate_frames(ortho: Path, corridor, segmenter, options, out_dir: Path | None = None
                    ) -> tuple[float, float, int]:
    """Every 512 x 640 frame window touching the corridor, predicted as frames in batches of
    ``options.batch_size`` (as ``taseg predict`` batches a folder of frames), and with
    ``out_dir`` each frame's five files written there as ``taseg predict`` writes them.
    Returns the seconds of composing, predicting (and writing) them, the seconds of reading
    their windows and rasterising their corridors (what frames from disk would cost too),
    corridor pixels."""
    import rasterio
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    from thermal_anomaly_segmenter.io.frames import Frame, compose_frame
    from thermal_anomaly_segmenter.outputs.write import write_outputs

    seconds, io_seconds, corridor_px, batch = 0.0, 0.0, 0, []

    written = 0

    def flush() -> float:
        nonlocal written
        t0 = time.perf_counter()
        for pred in segmenter.predict_batch(batch, options):
            if out_dir is not None:
                write_outputs(pred, out_dir, f"f{written}")
                written += 1
        batch.clear()
        return time.perf_counter() - t0

    with rasterio.open(ortho) as ds:
        for r in range(0, ds.height - 511, 512):
            for c in range(0, ds.width - 639, 640):
                t0 = time.perf_counter()
                mask = corridor.mask(window_transform(Window(c, r, 640, 512), ds.transform),
                                     (512, 640))
                if not mask.any():
                    io_seconds += time.perf_counter() - t0
                    continue
                t_u = ds.read(1, window=Window(c, r, 640, 512))
                io_seconds += time.perf_counter() - t0
                t0 = time.perf_counter()
                batch.append(Frame(compose_frame(t_u, mask), mask, "frame"))
                seconds += time.perf_counter() - t0
                corridor_px += int(mask.sum())
                if len(batch) == options.batch_size:
                    seconds += flush()
        if batch:
            seconds += flush()
    return seconds, io_seconds, corridor_px


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=4000, help="raster side, pixels (40000)")
    parser.add_argument("--spacing", type=int, default=1000, help="pipe grid spacing, pixels")
    parser.add_argument("--block", type=int, default=2048, help="streaming block side")
    parser.add_argument("--tile-overlap", type=float, default=0.25,
                        help="--tile-overlap of the streamed run (it blends with half of it; "
                             "frames have none)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved stream / frames rounds (ratios per round)")
    parser.add_argument("--keep", help="folder for the inputs and outputs (default: temp)")
    args = parser.parse_args()

    from thermal_anomaly_segmenter.config import PredictOptions
    from thermal_anomaly_segmenter.geo.network import PipeNetwork
    from thermal_anomaly_segmenter.geo.ortho import OrthoOptions, predict_ortho
    from thermal_anomaly_segmenter.geo.ortho_tiling import stream_overlap
    from thermal_anomaly_segmenter.inference.segmenter import get_segmenter
    from thermal_anomaly_segmenter.io.frames import Frame, compose_frame

    with tempfile.TemporaryDirectory(dir=args.keep) as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        ortho, pipes = write_inputs(folder, args.size, args.spacing)
        print(f"inputs: {args.size} x {args.size} float32 "
              f"({ortho.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - t0:.0f} s")
        options = PredictOptions(device="cpu")
        stream_options = PredictOptions(device="cpu", tile_overlap=args.tile_overlap)
        segmenter = get_segmenter(MODEL, "cpu")
        warm = np.full((512, 640), -3.0, np.float32)
        segmenter.predict_batch([Frame(compose_frame(warm, warm > -4), warm > -4, "w")], options)
        base = rss_mib()
        counter = ForwardCounter(segmenter)
        network = PipeNetwork.read(pipes)
        corridor = network.corridor_for("EPSG:25832", (ORIGIN[0], ORIGIN[1] - args.size * GSD,
                                                       ORIGIN[0] + args.size * GSD, ORIGIN[1]),
                                        8.0, "ortho")

        def stream(outputs=None) -> tuple[float, float, int, float, Any]:
            t0 = time.perf_counter()
            result = predict_ortho(ortho, network, segmenter, stream_options,
                                   folder / "out", "ortho",
                                   OrthoOptions(corridor_width_m=8.0, block=args.block,
                                                outputs=outputs))
            seconds = time.perf_counter() - t0
            n, fwd = counter.take()
            pixels["stream"] = counter.take_pixels()
            return seconds, seconds / result.corridor_px * 1e6, n, fwd, result

        def frames(files: bool = False) -> tuple[float, float, int, float, int, float]:
            seconds, io_seconds, px = separate_frames(
                ortho, corridor, segmenter, options, folder / "frames" if files else None)
            n, fwd = counter.take()
            pixels["frames"] = counter.take_pixels()
            return seconds, seconds / px * 1e6, n, fwd, px, io_seconds

        pixels: dict[str, int] = {}

        # Interleaved rounds (the order alternates), so that the machine's load, which
        # changes by the minute on a shared host, weighs on both paths alike.
        runs: dict[str, list] = {"stream": [], "frames": [], "json": [], "files": []}
        paths = {"stream": stream, "frames": frames, "json": lambda: stream(["json"]),
                 "files": lambda: frames(files=True)}
        for k in range(args.rounds):
            order = (("stream", "frames", "json", "files") if k % 2 == 0
                     else ("files", "json", "frames", "stream"))
            for name in order:
                runs[name].append(paths[name]())
                if k == 0 and name == "stream":  # round 1 streams first
                    stream_peak = peak_mib() - base
        result = runs["stream"][0][4]
        frames_px = runs["frames"][0][4]
        print(f"tile overlap {args.tile_overlap} (streamed tiles blend over "
              f"{stream_overlap(args.tile_overlap)}), block {args.block}, "
              f"{args.rounds} interleaved rounds")
        print(f"backend {segmenter.backend}, corridor {result.corridor_px} px "
              f"({result.corridor_px / args.size**2:.1%}), {result.blocks} blocks, "
              f"{frames_px} corridor px in 512 x 640 frames")
        for k in range(args.rounds):
            (s_s, s_per, s_n, s_fwd, _), (f_s, f_per, f_n, f_fwd, _, f_io) = (
                runs["stream"][k], runs["frames"][k])
            print(f"round {k + 1}: stream {s_s:.1f} s ({s_fwd:.1f} s in {s_n} forwards, "
                  f"{s_per:.2f} s/Mpx), frames {f_s:.1f} s ({f_fwd:.1f} s in {f_n} forwards, "
                  f"{f_per:.2f} s/Mpx; + {f_io:.1f} s reading windows and corridors): "
                  f"ratio per corridor px {s_per / f_per:.2f}x "
                  f"({s_per / (f_per * (f_s + f_io) / f_s):.2f}x against frames with reads)")
        stream_n, frames_n = runs["stream"][0][2], runs["frames"][0][2]
        fwd_ratio = (stream_n / result.corridor_px) / (frames_n / frames_px)
        ratios = sorted(s[1] / f[1] for s, f in zip(runs["stream"], runs["frames"],
                                                     strict=True))
        best = min(s[1] for s in runs["stream"]) / min(f[1] for f in runs["frames"])
        outside = [(s[0] - s[3]) / s[0] for s in runs["stream"]]
        frames_outside = [(f[0] - f[3]) / f[0] for f in runs["frames"]]
        print(f"peak RSS beyond the model {stream_peak:.0f} MiB (model + warm {base:.0f} MiB)")
        print(f"forward passes per corridor pixel, stream / frames: {fwd_ratio:.2f}x "
              f"({stream_n} / {frames_n})")
        print(f"time outside forward passes: stream {', '.join(f'{o:.0%}' for o in outside)}"
              f"; frames {', '.join(f'{o:.0%}' for o in frames_outside)}")
        px_ratio = (pixels["stream"] / result.corridor_px) / (pixels["frames"] / frames_px)
        print(f"network input pixels per corridor pixel, stream / frames: {px_ratio:.2f}x "
              f"({pixels['stream'] / 1e6:.1f} / {pixels['frames'] / 1e6:.1f} Mpx)")
        per_px = [(s[3] / pixels["stream"]) / (f[3] / pixels["frames"])
                  for s, f in zip(runs["stream"], runs["frames"], strict=True)]
        print(f"forward seconds per network pixel, stream / frames: "
              f"{', '.join(f'{r:.2f}x' for r in per_px)}")
        json_rounds = [j[1] / f[1] for j, f in zip(runs["json"], runs["frames"], strict=True)]
        print(f"stream writing only the JSON report (no COG, GeoPackage, GeoJSON, overlay) / "
              f"frames per corridor pixel: rounds {', '.join(f'{r:.2f}x' for r in json_rounds)}"
              f", median {sorted(json_rounds)[len(json_rounds) // 2]:.2f}x")
        file_rounds = [s[1] / f[1] for s, f in zip(runs["stream"], runs["files"], strict=True)]
        print(f"both with their files (stream: 2 COGs, GeoPackage, GeoJSON, overlay, JSON; "
              f"frames: taseg predict's 5 files each), stream / frames per corridor pixel: "
              f"rounds {', '.join(f'{r:.2f}x' for r in file_rounds)}, median "
              f"{sorted(file_rounds)[len(file_rounds) // 2]:.2f}x")
        print(f"stream (all outputs) / frames (no files) per corridor pixel: median of rounds "
              f"{ratios[len(ratios) // 2]:.2f}x (range {ratios[0]:.2f}-{ratios[-1]:.2f}), "
              f"best / best {best:.2f}x")


if __name__ == "__main__":
    main()
