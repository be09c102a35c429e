"""Static checks of the Dockerfile (no Docker engine here): what it copies exists, what it runs
exists, the API listens on 0.0.0.0:5000, and nothing fetches model weights."""

from __future__ import annotations

import json
import re
import shlex
import sys
from importlib.metadata import distribution
from pathlib import Path

import pytest

from thermal_anomaly_segmenter.config import DEFAULT_MODEL_NAME

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
SAMPLE = "data/samples/KA1_DJI_0_0095_R.npy.lz4"
SAMPLE_LICENCE = "data/samples/LICENSE-KA1_DJI_0_0095_R.txt"
#: Programs of the base image (Debian + conda Python) that RUN steps may call.
SYSTEM_TOOLS = {
    "apt-get", "cd", "echo", "git", "grep", "ln", "mkdir", "pip", "pip3", "python", "python3",
    "rm", "test", "touch", "true",
}  # fmt: skip
#: What fetching weights looks like in a shell line.
WEIGHT_DOWNLOADS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"from_pretrained",
        r"hf_hub_download|snapshot_download|huggingface-cli\s+download|hf\s+download",
        r"\bwget\b",
        r"\bcurl\b[^\n]*\.(pth|pt|safetensors|bin|ckpt|onnx|h5)\b",
        r"torch\.hub",
    )
]


def _instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines, also inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, str]]:
    return _instructions(DOCKERFILE.read_text(encoding="utf-8"))


def _of(steps: list[tuple[str, str]], keyword: str) -> list[str]:
    return [args for kw, args in steps if kw == keyword]


def _exec_form(args: str) -> list[str]:
    """Arguments of CMD/ENTRYPOINT/COPY as a list, from the JSON or the shell form."""
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def _copy_sources(steps: list[tuple[str, str]]) -> list[str]:
    sources = []
    for args in _of(steps, "COPY"):
        words = [w for w in _exec_form(args) if not w.startswith("--")]
        assert not any(w.startswith("--from") for w in _exec_form(args)), "multi-stage copy"
        assert len(words) >= 2, f"COPY needs a source and a destination: {args}"
        sources += words[:-1]
    return sources


def _commands(shell: str) -> list[list[str]]:
    """The simple commands of a shell line, split at ``&&``, ``||``, ``;``, ``|`` and ``&``
    outside quotes; ``VAR=value`` prefixes are dropped."""
    lexer = shlex.shlex(shell, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in ("&&", "||", ";", "|", "&"):
            commands.append([])
        elif commands[-1] or "=" not in token or token.startswith("-"):
            commands[-1].append(token)
    return [c for c in commands if c]


def _env(steps: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in _of(steps, "ENV"):
        words = shlex.split(args)
        if words and "=" not in words[0]:  # legacy "ENV KEY value"
            env[words[0]] = " ".join(words[1:])
            continue
        env.update(w.split("=", 1) for w in words)
    return env


def _scripts_provided() -> set[str]:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    if sys.version_info >= (3, 11):
        import tomllib

        ours = set(tomllib.loads(text)["project"]["scripts"])
    else:  # no TOML reader in 3.10's standard library; the section is simple enough
        section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
        ours = set(re.findall(r"^([A-Za-z0-9_.-]+)\s*=", section, re.MULTILINE))
    deepaas = {e.name for e in distribution("deepaas").entry_points if e.group == "console_scripts"}
    return ours | deepaas


# --------------------------------------------------------------------------- tests


def test_every_copied_path_exists(steps) -> None:
    sources = _copy_sources(steps)
    assert sources
    for source in sources:
        assert not Path(source).is_absolute() and ".." not in Path(source).parts, source
        matches = list(ROOT.glob(source))
        assert matches, f"COPY source {source!r} does not exist in the repository"


def test_default_model_and_sample_are_inside(steps) -> None:
    sources = _copy_sources(steps)

    def copied(path: str) -> bool:
        return any(path == s or path.startswith(s.rstrip("/") + "/") for s in sources)

    model = f"models/{DEFAULT_MODEL_NAME}"
    assert (ROOT / model / "train_config.json").is_file()
    assert copied(f"{model}/train_config.json"), f"the default model {model} is not copied"
    assert copied(SAMPLE), "the sample frame is not copied"
    assert copied(SAMPLE_LICENCE), "the sample frame's licence must travel with it"
    for path in ("pyproject.toml", "VERSION", "requirements.txt", "constraints.txt", "cli.py"):
        assert copied(path), f"{path} is not copied"
    for package in ("thermal_anomaly_segmenter", "api"):
        assert copied(f"{package}/__init__.py"), f"package {package} is not copied"


def test_api_on_port_5000(steps) -> None:
    starts = _of(steps, "CMD") + _of(steps, "ENTRYPOINT")
    assert starts, "no CMD or ENTRYPOINT"
    command = _exec_form(starts[-1])  # the last one wins
    assert command[0] in ("deepaas-run", "deep-start"), command
    if command[0] == "deepaas-run":
        text = " ".join(command).replace("=", " ")
        assert "--listen-ip 0.0.0.0" in text and "--listen-port 5000" in text, command
    else:
        assert "--deepaas" in command or "-d" in command, command
    exposed = {port.split("/")[0] for args in _of(steps, "EXPOSE") for port in args.split()}
    assert "5000" in exposed


def test_offline_at_run_time(steps) -> None:
    env = _env(steps)
    assert env.get("HF_HUB_OFFLINE") == "1"
    assert env.get("MODELS_PATH", "").endswith("/models")
    workdir = _of(steps, "WORKDIR")[-1]
    assert env["MODELS_PATH"] == f"{workdir}/models" and env["DATA_PATH"] == f"{workdir}/data"


def test_commands_exist(steps) -> None:
    provided = _scripts_provided()
    linked = {  # programs the Dockerfile itself installs, e.g. ln -s ... /usr/local/bin/x
        Path(cmd[-1]).name
        for args in _of(steps, "RUN")
        for cmd in _commands(args)
        if cmd[0] == "ln" and cmd[-1].startswith("/usr/local/bin/")
    }
    shell_lines = _of(steps, "RUN") + [
        " ".join(shlex.quote(w) for w in _exec_form(a))
        for a in _of(steps, "CMD") + _of(steps, "ENTRYPOINT")
    ]
    seen = set()
    for line in shell_lines:
        for cmd in _commands(line):
            program = cmd[0]
            seen.add(program)
            assert program in SYSTEM_TOOLS | provided | linked, (
                f"{program!r} is neither a base-image tool, a [project.scripts] entry, a "
                "deepaas console script nor installed by the Dockerfile"
            )
    assert "taseg" in seen and "taseg" in provided


def test_taseg_calls_parse(steps) -> None:
    """Every ``taseg`` command line in the Dockerfile is accepted by the real parser."""
    from thermal_anomaly_segmenter.cli.parser import build_parser

    calls = [cmd for args in _of(steps, "RUN") for cmd in _commands(args) if cmd[0] == "taseg"]
    assert calls
    for cmd in calls:
        try:
            args = build_parser().parse_args(cmd[1:])
        except SystemExit:
            pytest.fail(f"taseg rejects the Dockerfile's command line: {' '.join(cmd)}")
        for path in getattr(args, "inputs", []):
            assert (ROOT / path).is_file(), f"taseg is called on {path}, not in the repository"


def test_no_weights_downloaded(steps) -> None:
    for args in _of(steps, "RUN") + _of(steps, "ADD"):
        for pattern in WEIGHT_DOWNLOADS:
            assert not pattern.search(args), f"a build step may fetch weights: {args}"
    assert not _of(steps, "ADD"), "use COPY for local files; ADD can fetch URLs"


def test_parser_handles_continuations_and_comments() -> None:
    steps = _instructions(
        '# top\nFROM x\nRUN a \\\n  # inside\n  && b\nCMD ["deepaas-run", "--listen-ip", '
        '"0.0.0.0"]\n'
    )
    assert [(kw, " ".join(args.split())) for kw, args in steps] == [
        ("FROM", "x"),
        ("RUN", "a && b"),
        ("CMD", '["deepaas-run", "--listen-ip", "0.0.0.0"]'),
    ]
    assert _commands("FOO=1 pip install . && python -c 'a; b' > /tmp/x | grep -v y") == [
        ["pip", "install", "."],
        ["python", "-c", "a; b", ">", "/tmp/x"],
        ["grep", "-v", "y"],
    ]
