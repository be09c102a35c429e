"""get_metadata and the argument schemas of the DEEPaaS adapter (AI4OS template layout)."""

from __future__ import annotations

import re

import marshmallow
import pytest
from deepaas.model.v2.wrapper import UploadedFile  # noqa: F401  (the adapter's contract)

import api
from api import schemas
from thermal_anomaly_segmenter.config import DEFAULT_MODEL_NAME

PUBLISHED_KEYS = {
    "name", "description", "license", "version", "url", "author", "author-email",
    "datasets_local", "datasets_remote", "models_local", "models_remote",
}


@pytest.fixture()
def roots(models_root, tmp_path, monkeypatch):
    """MODELS_PATH with the shipped models, empty DATA_PATH and REMOTE_PATH."""
    from thermal_anomaly_segmenter.config import reload_settings

    (tmp_path / "data").mkdir()
    (tmp_path / "remote").mkdir()
    monkeypatch.setenv("DATA_PATH", str(tmp_path / "data"))
    reload_settings()
    yield {"models": models_root, "data": tmp_path / "data", "remote": tmp_path / "remote"}
    reload_settings()


def load_pred(values: dict, schema=None) -> dict:
    return (schema or schemas.PredArgsSchema()).load({"input_file": "frame", **values})


def make_dataset(folder):
    for name in ("generated_set", "manual_set"):
        (folder / name).mkdir(parents=True)
    return folder


def test_metadata_has_the_published_keys_and_shapes(roots):
    meta = api.get_metadata()
    assert set(meta) >= PUBLISHED_KEYS
    assert "Thermal Anomaly Segmenter (TASeg)" in meta["description"]
    assert "leak detection in district heating systems" in meta["description"]
    assert meta["license"] == "BSD-3-Clause"
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"])
    assert meta["url"].startswith("https://")
    assert isinstance(meta["author"], str) and meta["author"]
    assert isinstance(meta["author-email"], dict) and meta["author-email"]
    for key in ("datasets_local", "datasets_remote", "models_local", "models_remote"):
        assert isinstance(meta[key], list) and all(isinstance(p, str) for p in meta[key])


def test_metadata_version_is_the_version_file(roots):
    from thermal_anomaly_segmenter.config import BASE_DIR

    assert api.get_metadata()["version"] == (BASE_DIR / "VERSION").read_text().strip()


def test_metadata_lists_folders_at_call_time(roots):
    meta = api.get_metadata()
    assert meta["models_local"] == sorted(
        str(roots["models"] / name)
        for name in ("classical", DEFAULT_MODEL_NAME))
    assert meta["default_model"] == str((roots["models"] / DEFAULT_MODEL_NAME).resolve())
    assert meta["datasets_local"] == [] and meta["datasets_remote"] == []
    assert "segformer_b5" in meta["model_types"] and "classical" not in meta["model_types"]

    # Folders created after the first call show up in the next one.
    (roots["remote"] / "m1").mkdir()
    (roots["remote"] / "m1" / "train_config.json").write_text(
        (roots["models"] / "classical" / "train_config.json").read_text())
    make_dataset(roots["data"] / "ds1")
    make_dataset(roots["remote"] / "site" / "ds2")
    meta = api.get_metadata()
    assert meta["models_remote"] == [str(roots["remote"] / "m1")]
    assert meta["datasets_local"] == [str(roots["data"] / "ds1")]
    assert meta["datasets_remote"] == [str(roots["remote"] / "site" / "ds2")]


def test_predict_args_as_published(roots):
    args = api.get_predict_args()
    assert list(args)[:4] == ["input_file", "model_dir", "threshold", "accept"]
    field = args["input_file"]
    assert type(field) is marshmallow.fields.Field and field.required
    assert field.metadata["type"] == "file" and field.metadata["location"] == "form"
    assert args["threshold"].load_default == 0.5
    accept = args["accept"]
    assert accept.metadata["location"] == "headers"
    assert accept.load_default == "application/json"
    assert accept.validate.choices == [
        "application/json", "image/png", "application/zip", "application/geo+json",
        "text/html"]
    for name, field in args.items():
        assert field.metadata.get("description"), name


def test_predict_args_are_fresh_for_each_call(roots):
    # DEEPaaS appends "*/*" to the accept choices it gets: that must not leak.
    api.get_predict_args()["accept"].validate.choices.append("*/*")
    assert "*/*" not in api.get_predict_args()["accept"].validate.choices


def test_model_dir_default_is_resolved_when_loaded(roots, tmp_path, monkeypatch):
    from thermal_anomaly_segmenter.config import reload_settings

    schema = schemas.PredArgsSchema()  # built before the environment changes
    default = (roots["models"] / DEFAULT_MODEL_NAME).resolve()
    assert load_pred({}, schema)["model_dir"] == str(default)
    other = tmp_path / "other_models"
    other.mkdir()
    monkeypatch.setenv("MODELS_PATH", str(other))
    reload_settings()
    assert load_pred({}, schema)["model_dir"] is None  # no model now: predict answers 404


@pytest.mark.parametrize("value", ["/etc", "../", "../../etc", "classical/../..", "/"])
def test_model_dir_outside_the_roots_is_refused(roots, value):
    with pytest.raises(marshmallow.ValidationError, match="not inside"):
        load_pred({"model_dir": value})


def test_model_dir_symlink_leaving_the_roots_is_refused(roots, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "train_config.json").write_text(
        (roots["models"] / "classical" / "train_config.json").read_text())
    (roots["models"] / "link").symlink_to(outside)
    with pytest.raises(marshmallow.ValidationError, match="not inside"):
        load_pred({"model_dir": str(roots["models"] / "link")})


def test_model_dir_by_name_and_not_a_model(roots):
    loaded = load_pred({"model_dir": "classical"})
    assert loaded["model_dir"] == str((roots["models"] / "classical").resolve())
    (roots["models"] / "empty").mkdir()
    with pytest.raises(marshmallow.ValidationError, match="not a model folder"):
        load_pred({"model_dir": "empty"})


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_threshold_range(roots, value):
    with pytest.raises(marshmallow.ValidationError):
        load_pred({"threshold": value})


def test_train_args_as_published(roots):
    args = api.get_train_args()
    published = ["model_type", "train_phases", "dataset_path", "data_augmentation", "loss_fn",
                 "batch_size", "worker_count", "seed", "gpu", "mlflow"]
    assert list(args)[: len(published)] == published
    assert {"epochs", "max_time", "recipe"} <= set(args)
    assert args["recipe"].load_default == "auto"
    assert args["recipe"].validate.choices == ["auto", "published", "cpu"]
    assert args["model_type"].load_default == "segformer_b0"
    assert args["model_type"].validate.choices == [
        "segformer_b0", "segformer_b1", "segformer_b2", "segformer_b3", "segformer_b4",
        "segformer_b5", "smp_deeplabV3plus", "smp_unet", "smp_pspnet"]
    assert args["train_phases"].load_default == [
        "pre_train_frozen", "pre_train_unfrozen", "fine_tune"]
    assert args["data_augmentation"].load_default is True
    assert args["loss_fn"].load_default == "Tversky"
    assert set(args["loss_fn"].validate.choices) == {"BCE", "Dice", "Jaccard", "Tversky", "Focal"}
    assert args["batch_size"].load_default == 16
    assert args["seed"].load_default == 10
    assert args["mlflow"].load_default is True
    assert args["gpu"].load_default is None  # = use CUDA when available; false trains on CPU
    for name, field in args.items():
        assert field.metadata.get("description"), name


def test_api_train_leaves_published_defaults_to_the_recipe(roots, monkeypatch):
    """Arguments the caller did not give go to the recipe; given ones win, equal or not."""
    import pickle

    from thermal_anomaly_segmenter import train as training

    # DEEPaaS loads the request with these fields (webargs) and fills in the defaults; the
    # filled-in values stay recognisable, also after the trip to its spawned train worker.
    loaded = marshmallow.Schema.from_dict(api.get_train_args())().load(
        {"epochs": 1, "loss_fn": "Tversky"})
    loaded = pickle.loads(pickle.dumps(loaded))
    assert loaded["model_type"] == "segformer_b0" and loaded["batch_size"] == 16
    assert schemas.defaulted_args(schemas.TrainArgsSchema(), loaded) == {
        "model_type", "train_phases", "batch_size"}

    seen = []

    def fake_train(options, settings=None):  # only the hand-over to the core is under test
        seen.append(options)
        raise RuntimeError("stop here")

    monkeypatch.setattr(training, "train", fake_train)
    for given in (loaded, {}, {"model_type": "segformer_b0", "loss_fn": "Tversky",
                               "batch_size": 16, "train_phases": ["fine_tune"]}):
        with pytest.raises(Exception, match="stop here"):
            api.train(**given)
    from_deepaas, unset, mine = seen
    assert (from_deepaas.model_type, from_deepaas.loss_fn, from_deepaas.batch_size,
            from_deepaas.epochs) == (None, "Tversky", None, 1)
    assert (unset.model_type, unset.loss_fn, unset.batch_size, unset.train_phases,
            unset.recipe) == (None, None, None, None, "auto")
    assert unset.resolved("gpu").model_type == "segformer_b0"
    assert unset.resolved("cpu").model_type == "smp_unet"
    assert (mine.model_type, mine.loss_fn, mine.batch_size, mine.train_phases) == (
        "segformer_b0", "Tversky", 16, ("fine_tune",))
    assert mine.resolved("cpu").model_type == "segformer_b0"


def test_train_args_load_and_validate(roots):
    schema = schemas.TrainArgsSchema()
    loaded = schema.load({"train_phases": ["fine_tune"], "gpu": "false", "epochs": 2})
    assert loaded["train_phases"] == ["fine_tune"] and loaded["gpu"] is False
    assert loaded["dataset_path"] is None  # none found: the training says what is missing
    for bad in ({"train_phases": ["warm_up"]}, {"train_phases": []}, {"loss_fn": "MSE"},
                {"batch_size": 0}, {"seed": 0}, {"model_type": "classical"},
                {"max_time": 0}, {"dataset_path": "/etc"}):
        with pytest.raises(marshmallow.ValidationError):
            schema.load(bad)


def test_dataset_path_default_and_confinement(roots):
    make_dataset(roots["data"] / "ds_local")
    make_dataset(roots["remote"] / "ds_remote")
    schema = schemas.TrainArgsSchema()
    # Published order: REMOTE_PATH first.
    assert schema.load({})["dataset_path"] == str((roots["remote"] / "ds_remote").resolve())
    assert schema.load({"dataset_path": "ds_local"})["dataset_path"] == str(
        (roots["data"] / "ds_local").resolve())
    with pytest.raises(marshmallow.ValidationError, match="not inside"):
        schema.load({"dataset_path": str(roots["models"])})


def test_load_args_ignores_deepaas_cli_callables(roots):
    # deepaas-cli hands the schema's callable default over as a value.
    loaded = schemas.load_args(schemas.PredArgsSchema(), {
        "input_file": "x", "model_dir": schemas.default_model_dir, "threshold": 0.3,
        "unknown": 1})
    assert loaded["model_dir"] == str((roots["models"] / DEFAULT_MODEL_NAME).resolve())
    assert loaded["threshold"] == 0.3 and "unknown" not in loaded
