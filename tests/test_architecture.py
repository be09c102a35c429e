"""The shape of the code: what importing the adapters costs, and what the wings export."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Libraries that cost seconds and hundreds of MB: they load when a model or a plot is needed.
HEAVY = ("torch", "lightning", "transformers", "mlflow", "onnxruntime", "cv2", "matplotlib",
         "segmentation_models_pytorch", "timm", "albumentations")


def _imported_after(statement: str) -> set[str]:
    code = (f"import json, sys\n{statement}\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("statement", [
    "import api",
    "import thermal_anomaly_segmenter.cli.parser",
    "import cli",
    "import thermal_anomaly_segmenter.io, thermal_anomaly_segmenter.train, "
    "thermal_anomaly_segmenter.report",
])
def test_importing_an_adapter_or_a_wing_loads_no_heavy_library(statement):
    assert not _imported_after(statement) & set(HEAVY)


def test_wings_export_their_main_names():
    from thermal_anomaly_segmenter import io, report, train

    assert io.read_frame.__module__ == "thermal_anomaly_segmenter.io.read"
    assert report.write_outputs.__module__ == "thermal_anomaly_segmenter.outputs.write"
    assert callable(train.phase_recipes)
    with pytest.raises(AttributeError):
        report.no_such_name  # noqa: B018


def test_old_module_names_still_import():
    """Code written against the flat layout keeps working."""
    from thermal_anomaly_segmenter.frame_io import Frame, read_frame
    from thermal_anomaly_segmenter.reporting import render_overlay, write_outputs

    from thermal_anomaly_segmenter.datasets import load_split

    assert read_frame.__module__.startswith("thermal_anomaly_segmenter.io")
    assert Frame and load_split and render_overlay and write_outputs
