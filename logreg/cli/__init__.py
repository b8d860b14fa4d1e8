"""The command line: one module per command group; each parses, calls, prints.

Bad input (LogregError) becomes one line on stderr and exit status 2; Ctrl-C exit status 130;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from logreg.cli import bench, datasets, proxy, report, samplers, server, sweep, train, ui
from logreg.cli.common import EXIT_BAD_INPUT, EXIT_INTERRUPTED, Parser
from logreg.errors import LogregError, LogregWarning

COMMAND_GROUPS = (train, datasets, sweep, ui, samplers, bench, report, server, proxy)


def build_parser() -> argparse.ArgumentParser:
    from logreg import __version__

    parser = Parser(prog="logreg", description="Logistic regression benchmark suite.")
    parser.add_argument("--version", action="version", version=f"logreg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in COMMAND_GROUPS:
        group.add_parser(sub)
    return parser


def _one_line_warnings() -> None:
    """LogregWarning as one line on stderr ('logreg: warning: ...'), each text once."""
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, LogregWarning):
            return shown(message, category, filename, lineno, file, line)
        print(f"logreg: warning: {message}", file=sys.stderr)

    warnings.showwarning = show
    warnings.simplefilter("default", LogregWarning)


def main(argv: Sequence[str] | None = None) -> int:
    _one_line_warnings()
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except LogregError as exc:
        print(f"logreg: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("logreg: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `logreg ... | head`: the reader left; nothing more to say
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


__all__ = ["build_parser", "main"]
