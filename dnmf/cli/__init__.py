"""The ``dnmf`` command: parser, exit statuses and subcommands."""

from dnmf.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
