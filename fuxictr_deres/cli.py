"""The ``fuxictr-deres`` command line: one front door for running, preparing, measuring and tuning.

Each subcommand lives in its own module under ``fuxictr_deres.commands`` and is discovered here.
"""

import argparse
import importlib
import pkgutil
import sys
from typing import Callable, List, Optional

from . import commands
from .cpu_allocator import keep_freed_memory
from .errors import ConfigError, NonFiniteLossError

#: errors whose message is the whole story for the user: printed without a traceback, exit code 2
USER_ERRORS = (ConfigError, NonFiniteLossError, FileNotFoundError, ValueError)


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    keep_freed_memory()
    try:
        return func(args) or 0
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _add_example(parser: argparse.ArgumentParser, example: str) -> None:
    """End the subcommand's --help with its module's EXAMPLE (after any epilog the module wrote)."""
    parser.epilog = (parser.epilog + "\n\n" if parser.epilog else "") + "example:\n  " + example
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fuxictr-deres", description=__doc__.splitlines()[0],
                                     epilog="example:\n  fuxictr-deres run --config benchmark_configs --expid "
                                            "DeRes_demo\n  fuxictr-deres list --model DeRes --dataset frappe",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        before = set(subparsers.choices)
        module.register(subparsers)
        for name in set(subparsers.choices) - before:
            if getattr(module, "EXAMPLE", None):
                _add_example(subparsers.choices[name], module.EXAMPLE)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
