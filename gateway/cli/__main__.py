"""``python -m gateway.cli``: the ``gateway`` command."""

from . import cli

cli(prog_name="gateway")
