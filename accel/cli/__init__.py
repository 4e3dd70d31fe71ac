"""The ``accel`` command line: the one place that wires every package together (nothing imports it).

Each command lives in its own module of this package (:mod:`accel.cli.info`, ``workload``, ``run``,
``map``, ``sweep``, ``report``, ``rtl``, ``fpga``) with a ``register(subparsers)`` that adds its
parser and a handler that parses nothing more, makes one library call and prints. :func:`main`
builds only the parser of the command asked for, so ``accel --help`` and every command import only
what they use (no onnx, pandas, matplotlib, amaranth, HiGHS or SimPy at start).

The promise to the user: every failure is one line ``accel: error: ...`` on stderr and exit status 2
(130 after Ctrl-C), never a traceback: bad input (an :class:`~accel.errors.AccelError` from the
libraries), bad arguments, files that cannot be written, a closed output pipe. ``-v`` (INFO) and
``-vv`` (DEBUG, with the traceback of an unexpected error) are accepted before or after the command.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings
from collections.abc import Sequence

__all__ = ["main"]

_log = logging.getLogger("accel.cli")

#: Every command: its module in this package and its one-line help (shown by ``accel --help``).
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("info", "print a hardware description"),
    "workload": ("workload", "print a workload's layer table"),
    "run": ("run", "map a workload onto a design and simulate it"),
    "map": ("map", "map a workload: per-layer tiling and scratchpad allocation"),
    "sweep": ("sweep", "run a design-space sweep into a results table"),
    "report": ("report", "write the HTML report of a sweep's results"),
    "rtl": ("rtl", "generate Verilog for the RTL units"),
    "fpga": ("fpga", "FPGA synthesis reports and board bitstreams"),
}


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the CLI's promise: a bad argument is one line ``accel: error: ...``, exit 2.

    argparse prints the usage and then the message (two lines and more); here the message names the
    command (``accel run: ...``) and points at ``--help`` instead.
    """

    def format_help(self) -> str:
        if callable(self.epilog):  # computed when shown: listing the presets and models costs imports
            self.epilog = self.epilog()
        return super().format_help()

    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.removeprefix("accel").strip()
        sys.stderr.write(f"accel: error: {command + ': ' if command else ''}{message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def add_verbose(parser: argparse.ArgumentParser) -> None:
    """``-v/--verbose`` on a command's parser too, so it works after the command (``accel run -v``)."""
    parser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="log each step (-vv: debug detail)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``accel`` command line on ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(argv)
    parser = _parser(command)
    args = parser.parse_args(argv)
    _setup_logging(args.verbose or 0)
    if not hasattr(args, "handler"):
        parser.print_help(sys.stderr)
        return 2
    try:
        if getattr(args, "own_progress", False):  # the command shows its own progress bar (sweep)
            code = args.handler(args) or 0
        else:
            from accel.cli._output import activity

            with activity(f"accel {command}"):
                code = args.handler(args) or 0
        sys.stdout.flush()  # a closed pipe must fail here, not in the interpreter's exit
        return code
    except KeyboardInterrupt:
        print("accel: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``accel workload resnet50 | head``): say so once; stdout is dead, and
        # Python's final flush of it must not raise again at exit.
        _silence_stdout()
        print("accel: error: the output was closed before everything was written (broken pipe)",
              file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the CLI's promise: one line for every failure
        return _report_error(exc)


class _Once(logging.Filter):
    """Pass each distinct warning text once: a library that both warns and logs a problem (or meets it
    twice) shows one line."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        text = record.getMessage()
        if text in self.seen:
            return False
        self.seen.add(text)
        return True


def _setup_logging(verbose: int) -> None:
    """Log lines ``accel: warning: ...`` on stderr (INFO with -v, DEBUG with -vv); Python warnings
    become such lines too (no source path), each distinct text once."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("accel: %(levelname)s: %(message)s" if verbose < 2
                                    else "accel: %(levelname)s: %(name)s: %(message)s"))
    handler.addFilter(_Once())
    handler.accel_cli = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "accel_cli", False)]:  # main() called again in-process
        root.removeHandler(old)
    root.addHandler(handler)  # other handlers (a host's, pytest's) stay
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    warnings_log = logging.getLogger("accel.warnings")

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: object = None,
             line: str | None = None) -> None:
        warnings_log.warning("%s", message)

    warnings.showwarning = show  # type: ignore[assignment]


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.levelname = record.levelname.lower()
        return super().format(record)


def _report_error(exc: Exception) -> int:
    from accel.errors import AccelError

    if isinstance(exc, AccelError):
        message = str(exc)
    elif isinstance(exc, OSError) and exc.strerror:  # a file or the system said no: not a bug
        where = f"{exc.filename}: " if exc.filename else ""
        message = f"{where}{exc.strerror[0].lower()}{exc.strerror[1:]}"
    elif isinstance(exc, OSError | TimeoutError) and str(exc).strip():  # e.g. a server that does not answer
        message = str(exc).strip().splitlines()[0]
    else:
        # A bug, not bad input: still one line, and the traceback with -vv.
        _log.debug("unexpected error", exc_info=exc)
        text = str(exc).strip().splitlines()
        message = (f"unexpected {type(exc).__name__}: {text[0] if text else 'no message'} "
                   "(this is a bug in accel; run with -vv for the traceback)")
    print(f"accel: error: {message}", file=sys.stderr)
    return 2


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (tests capture it)
        pass


def _command_of(argv: Sequence[str]) -> str | None:
    """The command ``argv`` asks for: its first word that is not an option (top-level options take no value)."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def _parser(command: str | None) -> ArgumentParser:
    """The parser, with only ``command``'s subparser built in full (the others are name and help)."""
    parser = ArgumentParser(
        prog="accel",
        description="Design DNN accelerators: describe the hardware, map a DNN onto it, simulate it.",
        epilog=_top_epilog if command is None else None,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log each step (-vv: debug detail)")
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=ArgumentParser)
    for name, (module, help_text) in COMMANDS.items():
        if name == command:
            importlib.import_module(f"accel.cli.{module}").register(sub)
            _add_verbose_everywhere(sub.choices[name])
        else:
            sub.add_parser(name, help=help_text)
    return parser


class _Version(argparse.Action):
    """``--version``: the installed distribution's version, looked up only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:  # noqa: A002
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            release = version("accel")
        except PackageNotFoundError:  # a source tree that is not installed
            release = "unknown (not installed)"
        print(f"accel {release}")
        parser.exit()


def _top_epilog() -> str:
    # The zoo's names would import the graph IR (and numpy): the command pages list them instead.
    from accel import config

    return (f"Presets: {', '.join(config.preset_names())}. Workloads: a zoo model (accel workload --help lists "
            "them), FILE.onnx or a SCALE-Sim FILE.csv. Every command has --help.")


def epilog() -> str:
    """The presets and zoo models, for the help pages (the zoo is a table of names: no model is built)."""
    from accel import config
    from workloads import zoo

    return f"Presets: {', '.join(config.preset_names())}. Models: {', '.join(zoo.names())}."


def _add_verbose_everywhere(parser: argparse.ArgumentParser) -> None:
    """``-v`` on ``parser`` and on every parser below it (``accel fpga synth -v``)."""
    if not any("--verbose" in action.option_strings for action in parser._actions):
        add_verbose(parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_verbose_everywhere(child)
