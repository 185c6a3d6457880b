"""Subcommands of the ``fuxictr-deres`` command line: one module each, with ``register(subparsers)``.

A module registers its parser and sets ``func`` (called with the parsed args, returns an exit code).
"""
