"""Sphinx configuration of the TASeg documentation.

Build (warnings are errors, as in CI)::

    .venv/bin/sphinx-build -W -b html docs docs/_build/html
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# The repository root holds the packages (and the compat cli.py); _ext the local directive.
sys.path[:0] = [str(ROOT), str(DOCS / "_ext")]
# Importing the modules for autodoc must never reach a model hub or PyPI.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

project = "Thermal Anomaly Segmenter (TASeg)"
author = "TASeg developers"
copyright = "TASeg developers, BSD-3-Clause"  # noqa: A001 - Sphinx's name
release = (ROOT / "VERSION").read_text(encoding="utf-8").strip()
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "cli_help",
]
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]
root_doc = "index"

# Google-style docstrings; attributes as fields, so a dataclass's "Attributes:" section and
# its members do not describe the same object twice.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_class_signature = "separated"
# The real packages are imported (they are all installed): documentation of what runs.

html_theme = "alabaster"
html_title = f"TASeg {release}"
html_static_path: list[str] = []
html_theme_options = {
    "description": "Leak detection in district heating systems from drone thermal imagery",
    "fixed_sidebar": True,
}
autodoc_inherit_docstrings = False  # Lightning hooks carry Lightning-only markup
