"""The published TASeg command line, kept for compatibility: ``python -m cli {train,predict}``.

Options are generated from the API schemas (:mod:`api.schemas`), so they carry the API's
names, defaults and checks, and the commands call the same functions as the API
(:func:`api.run_predict`, :func:`api.run_train`). Unlike the published CLI, booleans take
``true``/``false`` (or ``--no-NAME``), ``--train_phases`` takes several phases and the frame
is chosen with ``--input_filepath`` (default: the shipped sample frame, as the published CLI
had a default input). For everyday use prefer the ``taseg`` command.

Exit codes: 0 success; 2 bad arguments or input (one line on stderr); 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import marshmallow
from marshmallow import fields, validate

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def parse_bool(text: str) -> bool:
    """``true/false``, ``yes/no``, ``1/0``, ``on/off`` (any case); anything else is an error."""
    value = text.strip().lower()
    if value in ("true", "t", "yes", "y", "1", "on"):
        return True
    if value in ("false", "f", "no", "n", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (use true or false)")


def _default_text(field: fields.Field) -> str:
    default = field.load_default
    if default is marshmallow.missing:
        return "required" if field.required else "optional"
    if default is None:
        return "optional"
    if callable(default):
        return f"default: {default!r}"
    if isinstance(default, list):
        return f"default: {' '.join(map(str, default))}"
    return f"default: {default}"


def _scalar_type(field: fields.Field) -> Callable[[str], Any]:
    if isinstance(field, fields.Boolean):
        return parse_bool
    if isinstance(field, fields.Integer):
        return int
    if isinstance(field, fields.Float):
        return float
    return str


def _choices(field: fields.Field) -> list[Any] | None:
    validators = field.validators if hasattr(field, "validators") else []
    for validator in validators:
        if isinstance(validator, validate.OneOf):
            return list(validator.choices)
    return None


def add_schema_arguments(parser: argparse.ArgumentParser, schema: marshmallow.Schema) -> None:
    """Add one ``--name`` option per schema field to ``parser``.

    Values are only converted here; the schema validates and fills in the defaults later
    (:func:`api.schemas.load_args`), so an option not given is left out of the namespace.
    Booleans take a value (``--mlflow false``), default to true when bare (``--mlflow``) and
    have a negative form (``--no-mlflow``); lists take several values; an upload field
    ``x_file`` becomes ``--x_filepath PATH``.
    """
    for name, field in schema.fields.items():
        description = " ".join((field.metadata.get("description") or "").split())
        help_text = f"{description} ({_default_text(field)})".replace("%", "%%")
        if field.metadata.get("type") == "file":
            parser.add_argument(f"--{name}path", dest=name, metavar="PATH",
                                required=field.required, default=argparse.SUPPRESS,
                                help=help_text)
        elif isinstance(field, fields.Boolean):
            parser.add_argument(f"--{name}", nargs="?", const=True, type=parse_bool,
                                metavar="{true,false}", default=argparse.SUPPRESS,
                                help=help_text)
            parser.add_argument(f"--no-{name}", dest=name, action="store_false",
                                default=argparse.SUPPRESS, help=f"same as --{name} false")
        elif isinstance(field, fields.List):
            inner = field.inner
            parser.add_argument(f"--{name}", nargs="+", type=_scalar_type(inner),
                                choices=_choices(inner), default=argparse.SUPPRESS,
                                help=help_text)
        else:
            parser.add_argument(f"--{name}", type=_scalar_type(field), choices=_choices(field),
                                required=field.required, default=argparse.SUPPRESS,
                                help=help_text)
#: The frame ``predict`` runs on without ``--input_filepath`` (the published CLI had one too).
SAMPLE_FRAME = Path(__file__).resolve().parent / "data" / "samples" / "KA1_DJI_0_0095_R.npy.lz4"


def build_parser() -> argparse.ArgumentParser:
    """The ``train`` and ``predict`` sub-commands with options from the API schemas."""
    from api import schemas

    parser = argparse.ArgumentParser(
        prog="python -m cli", description="CLI for the TASeg (Thermal Anomaly Segmenter)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = sub.add_parser("train", help="train a TASeg model",
                           description="Train a TASeg model; prints the test metrics as JSON.")
    add_schema_arguments(train, schemas.TrainArgsSchema())
    predict = sub.add_parser("predict", help="predict with a TASeg model",
                             description="Segment one frame; writes its outputs to "
                             "<model_dir>/predictions/ and prints the JSON report.")
    add_schema_arguments(predict, schemas.PredArgsSchema())
    for action in predict._actions:
        if action.dest == "input_file":
            action.required, action.default = False, str(SAMPLE_FRAME)
            action.help = action.help.replace("(required)", f"(default: {SAMPLE_FRAME.name}, "
                                              "the shipped sample frame)")
    predict.add_argument("--output", metavar="PATH",
                         help="write the answer in the --accept format to PATH "
                         "(for image/png, application/zip, application/geo+json)")
    return parser


def _predict(values: dict[str, Any]) -> int:
    import api
    from api import responses, schemas

    output = values.pop("output", None)
    accept = values.get("accept") or schemas.ACCEPT_TYPES[0]
    formatter = responses.formatter_for(accept)
    schema = schemas.PredArgsSchema()
    args = schemas.load_args(schema, values)
    result = api.run_predict(args, args["input_file"], corridor_path=args.get("corridor_file"),
                             pipes_path=args.get("pipes_file"),
                             defaulted=schemas.defaulted_args(schema, values))
    answer = formatter(result)
    if output:
        data = answer.getvalue() if hasattr(answer, "getvalue") else (
            json.dumps(answer, indent=2) + "\n").encode()
        Path(output).write_bytes(data)
        print(output)
    elif hasattr(answer, "getvalue"):  # binary answer without --output: report the files
        print(json.dumps(responses.json_response(result), indent=2))
    else:
        print(json.dumps(answer, indent=2))
    return EXIT_OK


def _train(values: dict[str, Any]) -> int:
    import api
    from api import schemas

    schema = schemas.TrainArgsSchema()
    args = schemas.load_args(schema, values)
    print(json.dumps(api.run_train(args, schemas.defaulted_args(schema, values)), indent=2))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors end in one line on stderr and a non-zero exit code."""
    args = build_parser().parse_args(argv)
    values = {k: v for k, v in vars(args).items() if k != "command"}
    from marshmallow import ValidationError

    from api import responses
    from thermal_anomaly_segmenter.errors import TasegError

    try:
        return _predict(values) if args.command == "predict" else _train(values)
    except (ValidationError, TasegError, responses.ApiError) as exc:
        error = responses.error_for(exc)
        print(f"cli {args.command}: error: {error.message}", file=sys.stderr)
        return EXIT_USAGE if error.status_code < 500 else EXIT_FAILED
    except KeyboardInterrupt:
        print(f"cli {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line, not a traceback
        print(f"cli {args.command}: internal error: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
