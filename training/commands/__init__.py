"""Training subcommands of the ``concealscan`` tool; modules import torch only inside ``run``."""
