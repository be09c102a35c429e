"""All configuration of TASeg in one typed place.

:class:`Settings` holds what comes from the environment (read once by :func:`get_settings`);
the option dataclasses hold what a caller chooses per call. Both adapters (API and CLI) build
these objects and hand them to the core; nothing else reads ``os.environ``.

The published module's constants are module attributes too (``DATA_PATH``, ``MODELS_PATH``,
``REMOTE_PATH``, ``REMOTE_DATA_PATH``, ``REMOTE_MODELS_PATH``, ``MLFLOW_URI``,
``MLFLOW_USERNAME``, ``MLFLOW_PASSWORD``, ``LOG_LEVEL``: computed on access from
:func:`get_settings`; ``MODEL_VARIANTS``, ``TRAIN_PHASES``, ``LOSS_FUNCTIONS``, ``BASE_PATH``).
Paths follow the published rules: unset, they lie next to the package (``<repo>/data``,
``<repo>/models``); a relative value is relative to the working directory the process started
in, so a later ``chdir`` moves nothing. ``MLFLOW_URI`` is where runs are logged: the tracking
server when ``MLFLOW_TRACKING_URI`` is set, else the local store under MODELS_PATH.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from thermal_anomaly_segmenter import limits
from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.heat_loss import Conditions

#: Root of the source tree (the folder holding ``models/`` and ``data/`` when run from a checkout
#: or the Docker image), as in the AI4OS module template.
BASE_DIR = Path(__file__).resolve().parent.parent

#: Model used when the caller names none and ``TASEG_DEFAULT_MODEL`` is unset.
DEFAULT_MODEL_NAME = "unet_mobilenetv2_synthetic"

Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


def _start_dir() -> Path:
    try:
        return Path.cwd()
    except OSError:  # the working directory was deleted
        return BASE_DIR


#: Working directory at import: a relative DATA_PATH/MODELS_PATH means "relative to where the
#: process started" (as published), and a later ``chdir`` does not move them.
START_DIR = _start_dir()


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name, "").strip()
    return START_DIR / Path(value).expanduser() if value else default


def _given_path(name: str, default: Path) -> Path:
    """The path as the environment gave it (published: relative stays relative)."""
    value = os.environ.get(name, "").strip()
    return Path(value) if value else default


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(float(raw))
    except ValueError:
        raise InvalidInputError(f"environment variable {name}={raw!r} is not a number") from None
    if value < minimum:
        raise InvalidInputError(f"environment variable {name}={value} must be >= {minimum}")
    return value


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidInputError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


ZOOM_BOUNDS = (0.25, 4.0)


def check_zoom(zoom: tuple[float, float] | None) -> tuple[float, float] | None:
    """A zoom range ``(low, high)`` within :data:`ZOOM_BOUNDS`, ``low <= high``; or ``None``."""
    if zoom is None:
        return None
    try:
        low, high = (float(v) for v in zoom)
    except (TypeError, ValueError):
        raise InvalidInputError(f"zoom must be two numbers (low, high), got {zoom!r}") from None
    if not (ZOOM_BOUNDS[0] <= low <= high <= ZOOM_BOUNDS[1]):
        raise InvalidInputError(f"zoom must satisfy {ZOOM_BOUNDS[0]} <= low <= high <= "
                                f"{ZOOM_BOUNDS[1]}, got ({low}, {high})")
    return low, high


def local_tracking_uri(models_path: Path) -> str:
    """The embedded sqlite store under MODELS_PATH."""
    return f"sqlite:///{Path(models_path).resolve() / 'mlflow.db'}"


@dataclass(frozen=True)
class Settings:
    """Environment of one process. Paths are absolute; defaults follow the published TASeg."""

    data_path: Path
    models_path: Path
    remote_path: Path
    default_model: str
    mlflow_tracking_uri: str | None
    mlflow_username: str | None
    mlflow_password: str | None = field(repr=False)
    log_level: str
    api_log_level: str
    #: Largest frame accepted, in pixels (height x width). 8192 x 8192 orthomosaics fit.
    max_pixels: int
    #: Largest upload accepted by the API, in bytes.
    max_upload_bytes: int
    device: str
    #: Largest decoded size of one image (from its header, before decoding), in bytes.
    max_decoded_bytes: int = 2048 * 2**20
    #: Frames whose outputs the API keeps in ``<model_dir>/predictions`` (0 = all).
    keep_predictions: int = 1000
    #: Largest total a dataset zip's members may declare, in bytes.
    max_extract_bytes: int = 20480 * 2**20
    #: Seconds the API server gives one predict, from its received upload to its answer
    #: (0 = no limit); a predict over it is cancelled and its worker replaced.
    predict_timeout_s: int = 600
    #: Largest georeferenced raster (``--pipes``) in declared pixels, and most pixels its
    #: blocks along the corridor may read.
    max_ortho_pixels: int = 2_000_000_000
    #: Inference backend on the CPU: ``auto`` (ONNX Runtime when a fresh export exists),
    #: ``torch`` or ``onnx``.
    backend: str = "auto"
    #: Published ``REMOTE_DATA_PATH`` / ``REMOTE_MODELS_PATH`` (default: under REMOTE_PATH).
    remote_data_path: Path | None = None
    remote_models_path: Path | None = None
    #: Published ``DATA_PATH`` / ``MODELS_PATH`` exactly as the environment gave them (a
    #: relative one stays relative, for code that resolves it anew after a ``chdir``); the
    #: package itself only uses ``data_path`` / ``models_path``, resolved at start.
    data_path_given: Path | None = None
    models_path_given: Path | None = None
    #: MLflow experiment of training runs (``MLFLOW_EXPERIMENT_NAME``); default the repo folder.
    mlflow_experiment_name: str | None = None
    #: ``HF_HUB_OFFLINE``: True (the default) refuses anything that would need a download.
    hub_offline: bool = True

    @classmethod
    def from_env(cls) -> Settings:
        device = os.environ.get("TASEG_DEVICE", "auto").strip() or "auto"
        if device not in DEVICES:
            raise InvalidInputError(f"TASEG_DEVICE={device!r}: choose one of {', '.join(DEVICES)}")
        backend = os.environ.get("TASEG_BACKEND", "auto").strip() or "auto"
        if backend not in ("auto", "torch", "onnx"):
            raise InvalidInputError(f"TASEG_BACKEND={backend!r}: choose auto, torch or onnx")
        remote = _env_path("REMOTE_PATH", Path("/storage/taseg"))
        return cls(
            data_path=_env_path("DATA_PATH", BASE_DIR / "data").resolve(),
            models_path=_env_path("MODELS_PATH", BASE_DIR / "models").resolve(),
            remote_path=remote,
            default_model=os.environ.get("TASEG_DEFAULT_MODEL", "").strip() or DEFAULT_MODEL_NAME,
            mlflow_tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or None,
            mlflow_username=os.environ.get("MLFLOW_TRACKING_USERNAME") or None,
            mlflow_password=os.environ.get("MLFLOW_TRACKING_PASSWORD") or None,
            log_level=os.environ.get("LOG_LEVEL", "INFO").upper(),
            api_log_level=os.environ.get("API_LOG_LEVEL", "INFO").upper(),
            max_pixels=_env_int("TASEG_MAX_PIXELS", 100_000_000),
            max_upload_bytes=_env_int("TASEG_MAX_UPLOAD_MB", 1024) * 1024 * 1024,
            max_decoded_bytes=_env_int("TASEG_MAX_DECODED_MB", 2048) * 2**20,
            keep_predictions=_env_int("TASEG_KEEP_PREDICTIONS", 1000, minimum=0),
            max_extract_bytes=_env_int("TASEG_MAX_EXTRACT_MB", 20480) * 2**20,
            predict_timeout_s=_env_int("TASEG_PREDICT_TIMEOUT_S", 600, minimum=0),
            max_ortho_pixels=_env_int("TASEG_MAX_ORTHO_PIXELS", 2_000_000_000),
            device=device,
            backend=backend,
            remote_data_path=_env_path("REMOTE_DATA_PATH", remote / "data"),
            remote_models_path=_env_path("REMOTE_MODELS_PATH", remote / "models"),
            data_path_given=_given_path("DATA_PATH", BASE_DIR / "data"),
            models_path_given=_given_path("MODELS_PATH", BASE_DIR / "models"),
            mlflow_experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME", "").strip() or None,
            hub_offline=os.environ.get("HF_HUB_OFFLINE", "1") not in ("0", "false", "False", ""),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return Settings.from_env()


def reload_settings() -> Settings:
    """Forget the cached settings and read the environment again (tests, long-lived servers)."""
    get_settings.cache_clear()
    return get_settings()


#: Largest tile side a client may ask for (the API's ``tile_size``): a tile's batch of
#: inputs and activations must stay bounded (4096^2 at batch 1: ~1.5 GB on the CPU).
MAX_TILE_SIZE = 4096


@dataclass(frozen=True)
class PredictOptions:
    """How a frame becomes a mask. Every adapter builds one of these."""

    #: Sigmoid probability above which a pixel is an anomaly; ``None``: the model folder's
    #: stored threshold (chosen on validation data by training; 0.5, the published default,
    #: for folders without one).
    threshold: float | None = None
    #: Frames (or tiles) per forward pass.
    batch_size: int = 4
    device: str = "auto"
    #: Tile size (height, width) for large frames; ``None``: the model's training size, but
    #: at least 512 x 640 (see ``inference.MIN_TILE``).
    tile_size: tuple[int, int] | None = None
    #: Overlap between neighbouring tiles, as a fraction of the tile size.
    tile_overlap: float = 0.25
    #: Components smaller than this many pixels are dropped (specks).
    min_area_px: int = 4
    #: Ground sampling distance in metres per pixel, when known and not given by a GeoTIFF.
    gsd_m: float | None = None
    #: Frames finer than the model's training GSD are seen at that GSD (:mod:`.io.gsd`) when
    #: both are known; ``False`` always runs the network at the frame's own pixels.
    match_gsd: bool = True
    #: The night's conditions of the heat loss estimate (:mod:`.heat_loss`); defaults as
    #: stated in :class:`~thermal_anomaly_segmenter.heat_loss.Conditions`.
    conditions: Conditions = field(default_factory=Conditions)

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise InvalidInputError(f"threshold must be within 0..1, got {self.threshold}")
        if self.batch_size < 1:
            raise InvalidInputError(f"batch_size must be >= 1, got {self.batch_size}")
        _check_choice("device", self.device, DEVICES)
        if not 0.0 <= self.tile_overlap < 0.9:
            raise InvalidInputError(f"tile_overlap must be within 0..0.9, got {self.tile_overlap}")
        if self.tile_size is not None and min(self.tile_size) < 32:
            raise InvalidInputError(f"tile_size must be at least 32 x 32, got {self.tile_size}")
        if self.min_area_px < 1:
            raise InvalidInputError(f"min_area_px must be >= 1, got {self.min_area_px}")
        if self.gsd_m is not None and not self.gsd_m > 0:
            raise InvalidInputError(f"ground sampling distance must be > 0 m, got {self.gsd_m}")
        if self.gsd_m is not None and self.gsd_m > GSD_MAX_M:
            raise InvalidInputError(
                f"ground sampling distance must be at most {GSD_MAX_M:g} m per pixel, got "
                f"{self.gsd_m:g}")


PHASES: tuple[str, ...] = ("pre_train_frozen", "pre_train_unfrozen", "fine_tune")
LOSSES: tuple[str, ...] = ("Tversky", "Dice", "BCE", "Jaccard", "Focal")


@dataclass(frozen=True)
class Recipe:
    """Defaults of the train options a caller leaves unset (``None`` in :class:`TrainOptions`).

    ``published`` is the published TASeg recipe (what a GPU run gets). ``cpu`` is the setting
    that reached the quality target within 15 minutes on a 2-core CPU (benchmarks/RESULTS.md
    D02): a full-resolution U-Net with a MobileNetV2 encoder and a slim decoder,
    Dice loss, 256 x 320 windows. Where the shipped default has the same architecture, a run
    starts from its weights (as the published recipe starts from ImageNet/ADE weights; see
    ``TrainOptions.from_scratch``); where the dataset also has ``generated_set``, a short
    ``pre_train_unfrozen`` on its automatic labels comes first (``with_generated_set``).
    """

    name: str
    model_type: str
    loss_fn: str
    batch_size: int
    train_phases: tuple[str, ...]
    architecture: dict[str, Any] | None = None
    #: Training window; ``None`` = whole frames.
    input_size: tuple[int, int] | None = None
    #: Epochs of every phase, or phase -> epochs (the others from the published table);
    #: ``None`` = the per-phase table of the published recipe. With ``--max-time`` and no
    #: epochs given, they only set each phase's share of the budget (see ``train.loop``).
    epochs: int | dict[str, int] | None = None
    #: Phases when the dataset has both ``generated_set`` and ``manual_set`` (``None`` = the
    #: same as ``train_phases``).
    with_generated_set: tuple[str, ...] | None = None


RECIPES: dict[str, Recipe] = {
    "published": Recipe("published", "segformer_b0", "Tversky", 16, PHASES),
    "cpu": Recipe(
        "cpu", "smp_unet", "Dice", 8, ("fine_tune",),
        architecture={"encoder_name": "mobilenet_v2", "decoder_channels": [128, 64, 32, 16, 16]},
        input_size=(256, 320), epochs={"pre_train_unfrozen": 5, "fine_tune": 20},
        with_generated_set=("pre_train_unfrozen", "fine_tune"),
    ),
}
PRECISIONS: tuple[str, ...] = ("auto", "32-true", "bf16-mixed", "16-mixed")
AUGMENT_ON: tuple[str, ...] = ("auto", "cpu", "device")
#: ``auto`` = ``cpu`` when the run trains on the CPU, ``published`` on a GPU.
RECIPE_CHOICES: tuple[str, ...] = ("auto", *RECIPES)


@dataclass(frozen=True)
class TrainOptions:
    """One training run. Names follow the published TASeg train arguments.

    ``None`` in ``model_type``, ``train_phases``, ``loss_fn``, ``batch_size``, ``input_size``
    and ``epochs`` means "from the recipe": the published defaults (``segformer_b0``, all
    phases, ``Tversky``, 16, whole frames, the per-phase epochs) on a GPU, the CPU recipe on a
    CPU (see :class:`Recipe`); :meth:`resolved` fills them in.
    """

    model_type: str | None = None
    train_phases: tuple[str, ...] | None = None
    #: Folder holding ``generated_set`` and/or ``manual_set``; ``None`` finds one (published
    #: order: REMOTE_PATH, then DATA_PATH).
    dataset_path: str | None = None
    data_augmentation: bool = True
    loss_fn: str | None = None
    batch_size: int | None = None
    #: Data-loader workers; ``None`` derives them from cores and memory.
    worker_count: int | None = None
    seed: int = 10
    #: ``None`` uses a GPU when there is one; ``False`` trains on the CPU.
    gpu: bool | None = None
    mlflow: bool = True
    #: Epochs per phase (``{"fine_tune": 5}``) or one number for every phase; ``None`` = recipe.
    epochs: dict[str, int] | int | None = None
    #: Learning rate per phase, overriding the recipe.
    lr: dict[str, float] | None = None
    #: Wall-time budget for the whole run, in minutes.
    max_time: float | None = None
    #: Run folder of an interrupted run to continue from its last checkpoint.
    resume: str | None = None
    #: Normalisation mode (see :mod:`.normalization`).
    normalization: str = "relative"
    devices: int = 1
    num_nodes: int = 1
    early_stopping: int | None = None
    #: Frames whose label has this many anomaly pixels or fewer are skipped in training.
    min_label_px: int = 40
    #: Output model folder; ``None`` = ``MODELS_PATH/<model_type>_<loss>_<timestamp>``.
    output_dir: str | None = None
    #: Overrides of the zoo's architecture arguments (e.g. ``{"encoder_name": "resnet18"}``).
    architecture: dict[str, Any] | None = None
    #: Initial weights: ``None`` (random), a TASeg model folder (fine-tune it), a local
    #: weights folder/file, or a hub id (see ``zoo``). ``None`` starts from the shipped
    #: default model's weights where its architecture matches, unless ``from_scratch``.
    weights: str | None = None
    #: Start from random weights even where the shipped default model would fit.
    from_scratch: bool = False
    #: Training window (height, width): random crops of that size at native resolution
    #: (inference tiles larger frames at that size or 512 x 640, whichever is larger);
    #: ``"whole"`` = whole frames, at the first frame's size; ``None`` = the recipe's.
    input_size: tuple[int, int] | str | None = None
    #: ``auto``, ``published`` or ``cpu`` (see :class:`Recipe`).
    recipe: str = "auto"
    #: Lightning precision: ``auto`` (bf16 mixed on hardware with bf16, fp16 mixed on older
    #: GPUs, else fp32), ``32-true``, ``bf16-mixed`` or ``16-mixed``.
    precision: str = "auto"
    #: A published-format configuration file to take the per-phase recipe from instead of the
    #: shipped ``configurations/train_<model_type>.json`` (see :mod:`.recipe_files`).
    recipe_file: str | None = None
    #: Where training frames are augmented: ``cpu`` (albumentations in the loader workers),
    #: ``device`` (whole batches on the training device, see :mod:`.train.device_augment`)
    #: or ``auto`` (``device`` on a GPU, where the CPU side bound training; ``cpu`` on a CPU).
    augment_on: str = "auto"
    #: Zoom augmentation range ``(low, high)`` (see :mod:`.augmentation`); ``None`` or
    #: ``"none"``: none (the default of both recipes).
    zoom: tuple[float, float] | str | None = None
    #: Photometric augmentation (contrast gain, background gradient, blur, camera noise; see
    #: :mod:`.augmentation`); off in both recipes. Runs in the loader workers only.
    photometric: bool = False
    #: Surface-patch augmentation (straight-edged warm and cold man-made surfaces, never
    #: leaks; see :mod:`.augmentation`); off in both recipes. Runs in the loader workers only.
    surface_patches: bool = False

    def __post_init__(self) -> None:
        _check_choice("recipe", self.recipe, RECIPE_CHOICES)
        _check_choice("augment_on", self.augment_on, AUGMENT_ON)
        if self.zoom is not None and self.zoom != "none":
            check_zoom(self.zoom)  # type: ignore[arg-type]
        for name in ("photometric", "surface_patches"):
            if not isinstance(value := getattr(self, name), bool):
                raise InvalidInputError(f"{name} must be true or false, got {value!r}")
        for name in ("photometric", "surface_patches"):
            if getattr(self, name) and self.augment_on == "device":
                raise InvalidInputError(f"{name.replace('_', '-')} augmentation runs in the "
                                        "loader workers only: use augment_on cpu or auto with it")
        _check_choice("precision", self.precision, PRECISIONS)
        if self.train_phases is not None:
            bad = [p for p in self.train_phases if p not in PHASES]
            if bad or not self.train_phases:
                raise InvalidInputError(f"train_phases must be a non-empty subset of {PHASES}, "
                                        f"got {bad}")
        if self.loss_fn is not None:
            _check_choice("loss_fn", self.loss_fn, LOSSES)
        for name in ("batch_size", "seed", "devices", "num_nodes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InvalidInputError(f"{name} must be >= 1, got {value}")
        if self.worker_count is not None and self.worker_count < 0:
            raise InvalidInputError(f"worker_count must be >= 0, got {self.worker_count}")
        size = self.input_size
        if size is not None and size != "whole" and (
                isinstance(size, str) or len(size) != 2 or min(int(v) for v in size) < 32):
            raise InvalidInputError(
                f"input_size must be (height, width) >= 32 or 'whole', got {size}")
        if self.max_time is not None and not self.max_time > 0:
            raise InvalidInputError(f"max_time must be > 0 minutes, got {self.max_time}")
        epochs = self.epochs.values() if isinstance(self.epochs, dict) else [self.epochs]
        for name, value in (("batch_size", self.batch_size), ("worker_count", self.worker_count),
                            ("seed", self.seed), ("early_stopping", self.early_stopping),
                            ("max_time", self.max_time), *(("epochs", e) for e in epochs)):
            limits.check_train_value(name, value)

    def resolved(self, accelerator: str = "gpu", has_manual_set: bool = True,
                 has_generated_set: bool = False) -> TrainOptions:
        """A copy with the recipe chosen and every option it supplies filled in.

        Args:
            accelerator: ``gpu`` or ``cpu``: what the run trains on (picks the ``auto`` recipe).
            has_manual_set: Whether the dataset has hand labels; without them the CPU recipe
                trains ``pre_train_unfrozen`` on the automatic labels instead of ``fine_tune``.
            has_generated_set: Whether it also has automatic labels; with both, a recipe's
                ``with_generated_set`` phases run (the CPU recipe pre-trains on them first).
        """
        name = self.recipe
        if name == "auto":
            name = "cpu" if accelerator == "cpu" else "published"
        recipe = RECIPES[name]
        architecture = self.architecture
        if self.model_type is None and recipe.architecture is not None:
            architecture = {**recipe.architecture, **(architecture or {})}
        phases = self.train_phases or recipe.train_phases
        if self.train_phases is None and phases == ("fine_tune",) and not has_manual_set:
            phases = ("pre_train_unfrozen",)
        elif (self.train_phases is None and has_manual_set and has_generated_set
              and recipe.with_generated_set):
            phases = recipe.with_generated_set
        size = self.input_size if self.input_size is not None else recipe.input_size
        return replace(
            self,
            recipe=name,
            model_type=self.model_type or recipe.model_type,
            architecture=architecture,
            train_phases=tuple(phases),
            loss_fn=self.loss_fn or recipe.loss_fn,
            batch_size=self.batch_size or recipe.batch_size,
            input_size=None if size in (None, "whole") else tuple(size),  # type: ignore[arg-type]
            epochs=self.epochs if self.epochs is not None else (
                dict(recipe.epochs) if isinstance(recipe.epochs, dict) else recipe.epochs),
        )

    @property
    def zoom_range(self) -> tuple[float, float] | None:
        """The zoom augmentation's range, or ``None``."""
        if self.zoom is None or self.zoom == "none":
            return None
        low, high = self.zoom
        return float(low), float(high)


# --------------------------------------------------------------------------- published names

#: Published model types and the config names their runs are named after.
MODEL_VARIANTS: dict[str, str] = {
    **{f"segformer_b{i}": f"segfB{i}Poly" for i in range(5)},
    "smp_deeplabV3plus": "dv3+Poly", "smp_unet": "unetPoly", "smp_pspnet": "pspnetPoly",
}
#: Published phase names, in training order.
TRAIN_PHASES: list[str] = list(PHASES)
#: Published loss names and their spelling in a published ``train_config.json``.
LOSS_FUNCTIONS: dict[str, str] = {
    "Tversky": "tversky_0.3_0.7", "Dice": "dice", "Jaccard": "jaccard", "BCE": "bce",
}
BASE_PATH = BASE_DIR  # published name


# Published module constants that depend on the environment, computed on access from
# get_settings() (so they stay current after reload_settings() and nothing is read at import).
_SETTING_CONSTANTS: dict[str, Any] = {
    "DATA_PATH": lambda s: s.data_path_given or s.data_path,
    "MODELS_PATH": lambda s: s.models_path_given or s.models_path,
    "REMOTE_PATH": lambda s: s.remote_path,
    "REMOTE_DATA_PATH": lambda s: s.remote_data_path,
    "REMOTE_MODELS_PATH": lambda s: s.remote_models_path,
    "MLFLOW_URI": lambda s: s.mlflow_tracking_uri or local_tracking_uri(s.models_path),
    "MLFLOW_USERNAME": lambda s: s.mlflow_username or "",
    "MLFLOW_PASSWORD": lambda s: s.mlflow_password or "",
    "LOG_LEVEL": lambda s: getattr(logging, s.log_level, logging.INFO),
}


def __getattr__(name: str) -> Any:
    if name in _SETTING_CONSTANTS:
        return _SETTING_CONSTANTS[name](get_settings())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Largest ground sampling distance (m/px) a model folder or dataset may state: beyond it is
#: a typo (or degrees taken for metres).
GSD_MAX_M = 100.0
