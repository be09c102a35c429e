"""The published TASeg's own test suite, run over this tree: the drop-in check of issue 27.

    python -m benchmarks.published_suite --mirror GIT_DIR [--work DIR] [--keep]

``GIT_DIR`` is a git directory of ai4os-hub/thermal-anomaly-segmenter (the search tool's
``fetch github:ai4os-hub/thermal-anomaly-segmenter``; measured at its HEAD b43b5b4). The
suite's ``tests/`` is placed over a copy of this tree (tracked and untracked files, never our
own ``tests/``) and run with ``pytest`` as the published Jenkinsfile runs it, with
``DATA_PATH=tests/data`` and ``MODELS_PATH=tests/models`` (relative, as the suite expects).

Test-side changes, each printed before the run (nothing else in the suite is touched):

1. A ``None`` fixture for every argument our schemas add (the suite's conftest generates one
   fixture per schema field and has no value for the new ones; ``None`` means "not given").
2. Mocks of published internals re-pointed to the function that does the same job here, and
   answering in that function's result type:

   - ``api.utils.get_dirs`` -> ``thermal_anomaly_segmenter.io.datasets.list_dataset_folders``;
   - ``thermal_anomaly_segmenter.train_segmentation`` -> ``thermal_anomaly_segmenter.train.train``
     (the published one returned the run's folder; ours returns ``TrainResult``, the folder
     and the metrics read from it);
   - ``thermal_anomaly_segmenter.prediction.load_model`` (``kind, checkpoint -> network``) ->
     ``thermal_anomaly_segmenter.models.published.load_published`` (``folder -> network,
     ModelConfig``): the suite's ``DummyModel`` is returned unchanged with the configuration
     its ``mean``/``std`` give (the published loader read the normalisation from the network).

Prints pytest's summary line and one line per failed or erroring test; exit 0 when every
test but the two author-metadata tests (``test_authors``, ``test_emails``: the published
authors' names, which this project does not claim) passes.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess  # nosec B404 - git and pytest on our own tree
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AUTHOR_TESTS = ("test_authors", "test_emails")

REPOINTED = (
    ('"api.utils.get_dirs", autospec=True',
     '"thermal_anomaly_segmenter.io.datasets.list_dataset_folders", autospec=True'),
    ('"thermal_anomaly_segmenter.train_segmentation", autospec=True',
     '"thermal_anomaly_segmenter.train.train", autospec=True'),
    ("mock_train_segmentation.return_value = mock_model_path",
     "from thermal_anomaly_segmenter.train.runs import TrainResult\n"
     "        mock_train_segmentation.return_value = TrainResult(\n"
     "            model_dir=mock_model_path, run_dir=mock_model_path,\n"
     "            metrics={'test_dataset_iou': 0.0})"),
    ('"thermal_anomaly_segmenter.prediction.load_model",',
     '"thermal_anomaly_segmenter.models.published.load_published",'),
    ("mock_load_model.return_value = (\n            DummyModel().to(DEVICE).eval()\n        )",
     "from thermal_anomaly_segmenter.models.folder import ModelConfig\n"
     "        dummy = DummyModel().to(DEVICE).eval()\n"
     "        mock_load_model.return_value = (dummy, ModelConfig(\n"
     "            model_type='smp_unet', normalization={'mode': 'dataset',\n"
     "            'mean': dummy.mean, 'std': dummy.std}))"),
)


def _tree_files(root: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"],  # nosec B603 B607
                         cwd=root, check=True, capture_output=True, text=True).stdout
    return [f for f in out.splitlines() if f and not f.startswith("tests/")
            and (root / f).is_file()]


def prepare(mirror: Path, dest: Path) -> list[str]:
    """Our tree with the published ``tests/`` in ``dest``; returns the changes made."""
    for rel in _tree_files(ROOT):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    archive = subprocess.run(["git", f"--git-dir={mirror}", "archive", "HEAD", "tests"],  # nosec
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)  # nosec B603 B607
    changes = []
    conftest = dest / "tests" / "conftest.py"
    text = conftest.read_text()
    for old, new in REPOINTED:
        if old not in text:
            raise SystemExit(f"the suite's conftest.py has no {old!r}: another version?")
        text = text.replace(old, new)
        changes.append(f"conftest.py: {old.splitlines()[0]} -> {new.splitlines()[0]}")
    conftest.write_text(text)
    sys.path.insert(0, str(ROOT))
    import api.schemas as schemas  # our schemas: which fields the suite has no fixture for

    for folder, schema in (("test_predictions", schemas.PredArgsSchema),
                           ("test_training", schemas.TrainArgsSchema)):
        path = dest / "tests" / folder / "conftest.py"
        defined = set(re.findall(r"^def (\w+)\(", path.read_text(), re.M))
        extra = [f for f in schema().fields if f not in defined]
        with path.open("a") as fh:
            for name in extra:
                fh.write(f'\n\n@pytest.fixture(scope="module")\ndef {name}():\n    return None\n')
        changes.append(f"{folder}/conftest.py: None fixtures for {', '.join(extra)}")
    return changes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mirror", type=Path, required=True, help="git dir of the published repo")
    p.add_argument("--work", type=Path, help="folder to run in (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="taseg_published_"))
    if work.exists() and any(work.iterdir()):
        raise SystemExit(f"{work} is not empty")
    work.mkdir(parents=True, exist_ok=True)
    try:
        for line in prepare(args.mirror, work):
            print("test-side change:", line)
        env = {**os.environ, "DATA_PATH": "tests/data", "MODELS_PATH": "tests/models",
               "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1",
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        run = subprocess.run([sys.executable, "-m", "pytest", "--import-mode=importlib",  # nosec
                              "-p", "no:randomly", "-p", "no:cacheprovider", "-n", "0", "-q",
                              "-rfE", "tests"], cwd=work, env=env, capture_output=True,
                             text=True)
        lines = run.stdout.splitlines()
        for line in lines:
            if line.startswith(("FAILED", "ERROR")):
                print(line)
        print(lines[-1] if lines else run.stderr[-2000:])
        bad = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))
               and not any(t in ln for t in AUTHOR_TESTS)]
        return 1 if bad or not lines else 0
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
