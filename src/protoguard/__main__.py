"""The ``protoguard`` command (also ``python -m protoguard``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Optional


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="protoguard",
        description="Runtime guard for database-session providers.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"protoguard {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "demo",
        help="run every PG1xx misuse against a real SQLite database and show the errors",
        description="Run every PG1xx misuse against a real SQLite database (SQLAlchemy + "
        "aiosqlite) and print what plain Python says next to what protoguard says.",
    )
    from . import _cli

    _cli.add_parser(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit status (0 success, 1 failure, 2 usage error)."""
    parser = _parser()
    args = parser.parse_args(argv)
    from . import _environment

    if _environment.errors:
        # protoguard was imported with an invalid PROTOGUARD_* value, which the command
        # reports here (see _environment) rather than as a traceback at the import.
        for error in _environment.errors:
            print(f"protoguard: error: {error}", file=sys.stderr)
        return 2
    if args.command == "demo":
        from ._demo import run

        return run()
    if args.command == "check":
        from . import _cli

        return _cli.run(args.targets, args.format)
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
