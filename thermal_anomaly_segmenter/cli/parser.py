"""The ``taseg`` command: a thin adapter over the core functions.

Exit codes: 0 success; 2 bad input or usage (one line on stderr, never a traceback);
1 anything else. A bad frame among many is reported and the others still run. Each command's
arguments are declared in :mod:`.survey_parsers`, :mod:`.model_parsers` and
:mod:`.dataset_parsers`; what it does is in :mod:`.commands`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from thermal_anomaly_segmenter import __version__
from thermal_anomaly_segmenter.cli.commands import EXIT_FAILED, EXIT_USAGE
from thermal_anomaly_segmenter.cli.dataset_parsers import (
    add_build_dataset_parser,
    add_synth_parser,
)
from thermal_anomaly_segmenter.cli.model_parsers import (
    add_adapt_parser,
    add_calibrate_parser,
    add_evaluate_parser,
    add_export_parser,
    add_import_published_parser,
    add_models_parser,
    add_train_parser,
)
from thermal_anomaly_segmenter.cli.survey_parsers import (
    add_compare_parser,
    add_predict_parser,
    add_report_parser,
)
from thermal_anomaly_segmenter.config import get_settings
from thermal_anomaly_segmenter.errors import TasegError

log = logging.getLogger("taseg")

#: The sub-commands, in the order ``taseg --help`` lists them.
_SUBCOMMANDS = (
    add_predict_parser, add_report_parser, add_compare_parser, add_adapt_parser,
    add_models_parser, add_synth_parser, add_train_parser, add_evaluate_parser,
    add_export_parser, add_calibrate_parser, add_import_published_parser,
    add_build_dataset_parser,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taseg",
        description="Thermal Anomaly Segmenter (TASeg): find district-heating leaks in drone "
        "thermal frames.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parser in _SUBCOMMANDS:
        add_parser(sub)
    return parser


def _one_line(exc: BaseException, limit: int = 500) -> str:
    """A library's message on one line: the promise of exit code 2 is one line on stderr."""
    return " ".join(str(exc).split())[:limit]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        level = "DEBUG" if args.verbose else get_settings().log_level
        logging.basicConfig(
            level=getattr(logging, level, logging.INFO),
            format="%(levelname)s %(name)s: %(message)s",
        )
        return int(args.func(args))
    except TasegError as exc:
        print(f"taseg: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("taseg: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        log.debug("internal error", exc_info=True)
        print(
            f"taseg: internal error: {type(exc).__name__}: {_one_line(exc)} "
            "(run with -v for details)",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
