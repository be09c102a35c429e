"""The Sphinx documentation builds without a single warning (``sphinx-build -W``), as in CI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    # A fresh process with its own doctree folder: no state shared with the tests, and
    # nothing written into docs/.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-E",
            "-q",
            "-b",
            "html",
            "-d",
            str(out / "doctrees"),
            str(DOCS),
            str(out / "html"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, f"sphinx-build -W failed:\n{proc.stdout}\n{proc.stderr}"
    return out / "html"


def test_build_is_warning_free(html) -> None:
    pages = {p.stem for p in html.glob("*.html")}
    assert {
        "index",
        "getting_started",
        "data_format",
        "training",
        "own_survey",
        "cli",
        "outputs",
        "deployment",
        "api_reference",
    } <= pages


def test_generated_content(html) -> None:
    cli = (html / "cli.html").read_text(encoding="utf-8")
    # Help texts come from the parsers themselves, not from copies in the docs.
    assert "usage: taseg predict" in cli and "usage: python -m cli train" in cli
    assert "build-dataset" in cli
    api = (html / "api_reference.html").read_text(encoding="utf-8")
    for name in ("build_dataset", "read_frame", "classical_label", "get_metadata"):
        assert name in api
    assert (html / "_images" / "overlay_sample.png").is_file()


def test_every_module_is_in_the_api_reference() -> None:
    """A new module gets an ``automodule`` line in docs/api_reference.rst."""
    listed = set(
        re.findall(
            r"^\.\. automodule:: (\S+)", (DOCS / "api_reference.rst").read_text(), re.MULTILINE
        )
    )
    modules = {"api"} | {
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for package in ("thermal_anomaly_segmenter", "api")
        for p in (ROOT / package).rglob("*.py")
        if not p.name.startswith("_")
    }
    assert modules - listed == set(), "add these modules to docs/api_reference.rst"


RESULTS = ROOT / "benchmarks" / "RESULTS.md"
HISTORY = ROOT / "benchmarks" / "history"


def test_results_cites_decisions_that_exist() -> None:
    """RESULTS.md stays a short document, and every ``RESULTS.md Dnn`` cited in the code, the
    docs or the README names a row of its decisions table whose history links resolve."""
    text = RESULTS.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300
    rows = dict(re.findall(r"^\| (D\d\d) \|(.*)$", text, re.MULTILINE))
    assert rows, "RESULTS.md has no decisions table"
    for row in rows.values():
        links = re.findall(r"\]\((history/[^)]+)\)", row)
        assert links and all((RESULTS.parent / link).is_file() for link in links), row
    sources = [ROOT / "README.md", ROOT / "cli.py"]
    for folder, pattern in (("thermal_anomaly_segmenter", "*.py"), ("api", "*.py"),
                            ("benchmarks", "*.py"), ("tests", "*.py"), ("docs", "*.rst")):
        sources += (ROOT / folder).rglob(pattern)
    cited = set()
    for path in sources:
        source = path.read_text(encoding="utf-8")
        for m in re.finditer(r"RESULTS\.md", source):
            after = source[m.end():m.end() + 40]
            cited |= {(path.name, ident) for ident in re.findall(r"\bD\d\d\b", after)}
    assert cited, "no decision id is cited anywhere"
    assert {(name, ident) for name, ident in cited if ident not in rows} == set()


def test_history_files_are_never_edited() -> None:
    """benchmarks/history is append-only: each file keeps the hash it was added with."""
    import hashlib

    sums = dict(
        line.split("  ", 1)[::-1]
        for line in (HISTORY / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    )
    files = {p.name for p in HISTORY.glob("*.md")} - {"README.md"}
    assert files == set(sums), "list every history file, and only those, in SHA256SUMS"
    for name, digest in sums.items():
        assert hashlib.sha256((HISTORY / name).read_bytes()).hexdigest() == digest, name
