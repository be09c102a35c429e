"""Scale-out on Dask distributed: many orthomosaics or frames over processes and machines.

Why Dask distributed (over Ray or Lightning's predict loop under DDP): a survey is a bag of
files of very uneven cost (a 40k x 40k orthomosaic beside 640 x 512 frames). Dask's
scheduler hands out tasks dynamically and retries those of a lost worker, where DDP shards
the inputs statically up front and one large orthomosaic stalls its rank; Ray would do the
job too but brings a far heavier runtime (object store, raylet) for plain file-in/file-out
tasks. Each worker process keeps its model warm across tasks
(:func:`.inference.get_segmenter` caches it per process).

Local use: ``taseg predict INPUTS... --workers N`` starts a local cluster of ``N``
single-threaded worker processes. A cluster: start ``dask scheduler`` on one machine and
``dask worker tcp://SCHEDULER:8786 --nthreads 1`` on each machine (one worker per GPU, with
``CUDA_VISIBLE_DEVICES`` set per worker), all seeing the inputs, model folder and output
folder on a shared file system, then ``taseg predict INPUTS... --scheduler
tcp://SCHEDULER:8786``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from thermal_anomaly_segmenter.config import PredictOptions
from thermal_anomaly_segmenter.errors import InvalidInputError

if TYPE_CHECKING:
    from thermal_anomaly_segmenter.predict.files import PredictRequest

#: Frames per task: enough to batch forward passes, few enough to balance the workers.
FRAMES_PER_TASK = 16


def _unique_stems(paths: Sequence[Path]) -> list[str]:
    """Output stems fixed up front in input order, so they never depend on task timing."""
    from thermal_anomaly_segmenter.io.frames import frame_stem

    seen: dict[str, int] = {}
    stems = []
    for path in paths:
        stem = frame_stem(path)
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return stems


def _run_chunk(paths: list[str], names: list[str], request: PredictRequest) -> list:
    """One task, run in a worker process: predict a chunk of inputs in order."""
    from thermal_anomaly_segmenter.predict.files import predict_paths

    return list(predict_paths(paths, replace(request, names=names)))


def predict_distributed(
    inputs: Sequence[str | os.PathLike[str]],
    request: PredictRequest | None = None,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
) -> list:
    """Predict ``inputs`` on a Dask cluster; one :class:`.predict.files.FrameResult` per input.

    Args:
        request: as for :func:`.predict.files.predict_paths` (its ``names``,
            ``keep_predictions``, ``false_alarms`` and ``deferred_outputs`` are not used).
            Paths are made absolute, so workers on other machines need the same paths (a
            shared file system).
        workers: start a local cluster of this many worker processes.
        scheduler: address of a running Dask scheduler (``tcp://host:8786``) instead.
    """
    if (workers is None) == (scheduler is None):
        raise InvalidInputError("give either a number of local workers or a scheduler address")
    if workers is not None and not 1 <= workers <= (os.cpu_count() or 1) * 4:
        raise InvalidInputError(f"workers must be within 1..{(os.cpu_count() or 1) * 4}")
    from thermal_anomaly_segmenter.predict.files import PredictRequest, collect_inputs

    paths = [p.resolve() for p in collect_inputs(inputs)]
    task = _task_request(request or PredictRequest())
    stems = _unique_stems(paths)
    step = 1 if task.pipes is not None else FRAMES_PER_TASK
    chunks = [(i, min(i + step, len(paths))) for i in range(0, len(paths), step)]
    return _run_on_cluster(workers, scheduler, [
        (_run_chunk, [str(p) for p in paths[a:b]], stems[a:b], task) for a, b in chunks])


def _task_request(request: PredictRequest) -> PredictRequest:
    """What every task predicts with: absolute paths, the model folder resolved, and a bad
    pipe layer or output list refused once here rather than once per task."""
    from thermal_anomaly_segmenter.models.folder import resolve_model_dir
    from thermal_anomaly_segmenter.predict.files import PredictRequest

    folder = resolve_model_dir(request.model_dir)
    out_dir = request.out_dir
    out = Path(out_dir).expanduser().resolve() if out_dir else folder / "predictions"
    outputs, corridor, pipes = request.outputs, request.corridor, request.pipes
    task = PredictRequest(
        model_dir=str(folder), out_dir=str(out), options=request.options or PredictOptions(),
        overwrite=request.overwrite, outputs=None if outputs is None else tuple(outputs),
        corridor=None if corridor is None else str(Path(corridor).resolve()),
        pipes=None if pipes is None else str(Path(pipes).resolve()),
        corridor_width_m=request.corridor_width_m, pipe_id_field=request.pipe_id_field,
    )
    if pipes is not None:
        from thermal_anomaly_segmenter.geo.network import PipeNetwork
        from thermal_anomaly_segmenter.geo.ortho import ortho_outputs

        ortho_outputs(outputs)
        PipeNetwork.read(pipes, request.pipe_id_field)
    return task


def _run_on_cluster(workers: int | None, scheduler: str | None, tasks: list[tuple]) -> list:
    """Run ``tasks`` (function and arguments) on the scheduler's cluster, else on a local one
    of ``workers`` processes; their results in order, concatenated."""
    from distributed import Client, LocalCluster

    if scheduler is not None:
        cluster, client = None, Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        futures = [client.submit(*task, pure=False) for task in tasks]
        return [result for future in futures for result in future.result()]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
