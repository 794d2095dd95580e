"""The ``cadence`` command: ``demo``, ``plot`` and ``metric-definitions``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TextIO

DESCRIPTION = "cadence: Keras's fit() and its callbacks over plain PyTorch modules."

EPILOG = """examples:
  cadence demo                                  train the digits demo into runs/demo
  cadence demo --run-dir runs/try2 --epochs 20  another run folder, at most 20 epochs
  cadence plot runs/demo/training.csv -o curves.png
  cadence metric-definitions --keys loss val_loss accuracy val_accuracy
  cadence metric-definitions --csv runs/demo/training.csv
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; received {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; received {text!r}")
    return value


def _version() -> str:
    """Return the installed distribution's version, or the package's own without one."""
    from importlib import metadata

    try:
        return metadata.version("cadence")
    except metadata.PackageNotFoundError:  # Run from a source tree that is not installed.
        from cadence import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    """Return the ``cadence`` argument parser with its three subcommands."""
    parser = argparse.ArgumentParser(
        prog="cadence", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cadence {_version()}",
                        help="print cadence's version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo", help="train an MLP on scikit-learn's digits with every callback, resumable",
        description=(
            "Train a 64-128-10 MLP on scikit-learn's digits with ProgbarLogger, EarlyStopping, "
            "ReduceLROnPlateau, ModelCheckpoint, CSVLogger, TensorBoard, MLflowLogger and "
            "BackupAndRestore, writing everything under one run folder, then print the test "
            "accuracy and where every output went. Interrupted (Ctrl-C), the same command "
            "resumes from the last backup."
        ),
    )
    demo.add_argument("--run-dir", default="runs/demo", help="folder for all outputs (default: runs/demo)")
    demo.add_argument("--epochs", type=_positive_int, default=60,
                      help="most epochs to train; early stopping usually ends sooner (default: 60)")
    demo.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                      help="0 silent, 1 progress bar, 2 one line per epoch (default: 1)")

    plot = commands.add_parser(
        "plot", help="draw training/validation curves from a CSV log",
        description=(
            "Draw one panel per metric from a CSVLogger file, training and validation curves "
            "together, and save the figure (PNG, SVG or PDF by the output's suffix)."
        ),
    )
    plot.add_argument("csv", metavar="LOG.csv", help="a CSV log written by cadence.callbacks.CSVLogger")
    plot.add_argument("-o", "--output", default="curves.png", help="image to write (default: curves.png)")
    plot.add_argument("--keys", nargs="+", metavar="KEY", help="metrics to draw (default: all)")
    plot.add_argument("--title", help="a title over the panels")

    definitions = commands.add_parser(
        "metric-definitions", help="print SageMaker metric_definitions (JSON) for MetricsLogger lines",
        description=(
            "Print, as JSON, the [{\"Name\", \"Regex\"}] list a SageMaker Estimator takes as "
            "metric_definitions to read the values cadence.callbacks.MetricsLogger prints."
        ),
    )
    source = definitions.add_mutually_exclusive_group()
    source.add_argument("--keys", nargs="+", metavar="KEY",
                        help="epoch-log keys, e.g. loss val_loss accuracy (default: loss val_loss)")
    source.add_argument("--csv", metavar="LOG.csv", help="take the keys from a CSV log's header")
    definitions.add_argument("--prefix-train", default="train_",
                             help="MetricsLogger's prefix for training keys (default: train_)")
    definitions.add_argument("--indent", type=int, default=2, help="JSON indentation (default: 2)")
    return parser


def _demo(args: argparse.Namespace, out: TextIO) -> int:
    # Said at once: importing torch and scikit-learn takes a few seconds before the first epoch.
    print(f"cadence demo: starting (loading torch and scikit-learn's digits; outputs go to "
          f"{args.run_dir})", file=out, flush=True)
    from cadence import demo
    from cadence.extras import MissingExtraError

    try:
        demo.check_demo_packages()
    except MissingExtraError as error:
        print(f"cadence demo: error: {error}", file=sys.stderr)
        return 1
    return demo.main(args.run_dir, epochs=args.epochs, verbose=args.verbose, out=out)


def _plot(args: argparse.Namespace, out: TextIO) -> int:
    from cadence.plotting import plot_curves

    plot_curves(args.csv, args.output, keys=args.keys, title=args.title)
    print(f"Wrote {args.output}", file=out)
    return 0


def _metric_definitions(args: argparse.Namespace, out: TextIO) -> int:
    from cadence.integrations.sagemaker import metric_definitions

    if args.csv:
        from cadence.plotting import read_csv_log

        keys = [key for key in read_csv_log(args.csv) if key != "epoch"]
    else:
        keys = args.keys or ["loss", "val_loss"]
    definitions = metric_definitions(keys, prefix_train=args.prefix_train)
    print(json.dumps(definitions, indent=args.indent), file=out)
    return 0


_COMMANDS = {"demo": _demo, "plot": _plot, "metric-definitions": _metric_definitions}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the ``cadence`` command with ``argv`` (the process's arguments by default).

    Returns:
        The exit code: 0 on success, 1 when ``plot`` or ``metric-definitions`` cannot read
        their inputs (the reason on stderr), 2 for bad arguments, 130 when the demo was
        interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    out = out or sys.stdout
    if args.command == "demo":  # its errors keep their traceback
        return _demo(args, out)
    try:
        return _COMMANDS[args.command](args, out)
    except BrokenPipeError:
        # The reader went away (`cadence metric-definitions | head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (FileNotFoundError, ValueError, KeyError, TypeError, ImportError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"cadence {args.command}: error: {message}", file=sys.stderr)
        return 1


def console() -> None:
    """Run the ``cadence`` console script, then exit without the interpreter's teardown.

    Everything the commands write is closed and flushed when ``main`` returns; tearing down
    the modules of torch, MLflow and matplotlib would only add seconds before the prompt.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover - `python -m cadence.cli`
    console()
