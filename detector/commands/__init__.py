"""Workstation subcommands of the ``concealscan`` tool (see ``detector.cli``)."""
