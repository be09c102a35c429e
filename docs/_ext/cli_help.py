"""Sphinx directive ``cli-help``: the ``--help`` text of a TASeg command, taken from its parser.

The CLI reference is generated at build time, so it can never drift from the code::

    .. cli-help:: taseg predict

    .. cli-help:: python -m cli train

    .. cli-help:: taseg build-dataset

       Shown instead (as reStructuredText) while the sub-command does not exist.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

#: Width of the rendered help, fixed so the output does not depend on the build terminal.
HELP_COLUMNS = "90"


def _parser(program: str) -> argparse.ArgumentParser:
    if program == "taseg":
        from thermal_anomaly_segmenter.cli.parser import build_parser
    elif program == "python -m cli":
        from cli import build_parser
    else:
        raise ValueError(f"unknown program {program!r}; use 'taseg' or 'python -m cli'")
    return build_parser()


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:  # argparse offers no public look-up of sub-commands
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(name)
    return None


def help_text(command: str) -> str | None:
    """``--help`` of ``command`` (``"taseg"``, ``"taseg predict"``, ``"python -m cli train"``).

    Returns None when the sub-command does not exist.
    """
    program = next((p for p in ("taseg", "python -m cli") if command.startswith(p)), command)
    sub = command[len(program) :].strip()
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS  # argparse reads the width from here
    try:
        parser = _parser(program)
        if sub:
            parser = _subparser(parser, sub)
        return None if parser is None else parser.format_help()
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


class CliHelp(SphinxDirective):
    """Render a command's help as a literal block (or the directive body as a fallback)."""

    required_arguments = 1
    final_argument_whitespace = True
    has_content = True

    def run(self) -> list[nodes.Node]:
        command = self.arguments[0].strip()
        text = help_text(command)
        if text is not None:
            block = nodes.literal_block(text, text)
            block["language"] = "text"
            return [block]
        if not self.content:
            raise self.error(f"{command!r} does not exist and the directive has no fallback")
        container = nodes.container()
        self.state.nested_parse(StringList(self.content), self.content_offset, container)
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("cli-help", CliHelp)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
