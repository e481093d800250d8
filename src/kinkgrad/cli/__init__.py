"""The ``kinkgrad`` command line: one module per subcommand, each with ``add_parser`` and ``run``."""

from kinkgrad.cli._main import main

__all__ = ["main"]
