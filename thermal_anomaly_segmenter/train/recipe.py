"""Training recipes as typed tables.

Published recipe (overridable per phase): ``pre_train_frozen`` (generated_set, encoder
frozen), ``pre_train_unfrozen`` (generated_set), ``fine_tune`` (manual_set, train frames
repeated twice); epochs 15/35/60 (SegFormer-B4 fine_tune 95); learning rates SegFormer
1e-4/6e-5/2.5e-5, smp 3e-3/2e-3/1e-3; AdamW (eps 1e-8) with a poly schedule (power 1; stepped
per batch rather than per epoch, and with ``--max-time`` over each phase's share of the time
budget when that runs out first). Each phase starts from the previous phase's *best* weights
(by ``val_dataset_iou``), not its last ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thermal_anomaly_segmenter.config import PHASES, TrainOptions
from thermal_anomaly_segmenter.errors import InvalidInputError
from thermal_anomaly_segmenter.models.registry import TRAINABLE_TYPES, get_spec


@dataclass(frozen=True)
class PhaseRecipe:
    """One phase: which set it reads, whether the encoder is frozen, epochs and LR."""

    name: str
    set_name: str
    frozen: bool
    epochs: int
    lr: float
    repeat_train_images: int
    #: Range of the global temperature offset of the augmentation, degC.
    augmentation_range: tuple[float, float] = (-2.0, 2.0)


def phase_recipes(options: TrainOptions) -> list[PhaseRecipe]:
    """The phases of a run, in recipe order, with the options' overrides applied.

    Epochs, learning rate, frozen encoder, set, repeats and augmentation range of each phase
    come from the model type's configuration file (``options.recipe_file`` or the shipped
    ``configurations/train_<model_type>.json``, see :mod:`.recipe_files`), read now.
    Options not yet :meth:`~.config.TrainOptions.resolved` get the published recipe.
    """
    from thermal_anomaly_segmenter.models.recipe_files import read_recipe_file, recipe_for

    if options.model_type is None or options.train_phases is None:
        options = options.resolved("gpu")
    assert options.model_type is not None and options.train_phases is not None  # nosec B101
    get_spec(options.model_type)
    if options.model_type not in TRAINABLE_TYPES:
        raise InvalidInputError(
            f"{options.model_type} does not train; choose one of {', '.join(TRAINABLE_TYPES)}"
        )
    source = (read_recipe_file(options.recipe_file, options.model_type) if options.recipe_file
              else recipe_for(options.model_type))
    epochs_by_phase = {name: p.epochs for name, p in source.phases.items()}
    if isinstance(options.epochs, int) and not isinstance(options.epochs, bool):
        epochs_by_phase = dict.fromkeys(PHASES, options.epochs)
    elif isinstance(options.epochs, dict):
        epochs_by_phase.update(_check_phase_map("epochs", options.epochs))
    elif options.epochs is not None:
        raise InvalidInputError(
            f"epochs must be a number or phase -> number, got {options.epochs!r}"
        )
    lrs = {name: p.lr for name, p in source.phases.items()}
    lrs.update(_check_phase_map("lr", options.lr or {}))
    recipes = []
    for name in PHASES:  # recipe order, whatever order the caller listed them in
        if name not in options.train_phases:
            continue
        if name not in source.phases:
            raise InvalidInputError(f"phase {name} is not in {source.path}; its phases: "
                                    f"{', '.join(source.phases)}")
        phase = source.phases[name]
        epochs, lr = int(epochs_by_phase[name]), float(lrs[name])
        if epochs < 1:
            raise InvalidInputError(f"epochs of {name} must be >= 1, got {epochs}")
        if not lr > 0:
            raise InvalidInputError(f"lr of {name} must be > 0, got {lr}")
        recipes.append(PhaseRecipe(name, phase.set_name, phase.frozen, epochs, lr,
                                   phase.repeat_train_images, phase.augmentation_range))
    return recipes


def _check_phase_map(what: str, values: dict[str, Any]) -> dict[str, Any]:
    bad = [k for k in values if k not in PHASES]
    if bad:
        raise InvalidInputError(f"{what} names unknown phases {bad}; phases: {', '.join(PHASES)}")
    return dict(values)
