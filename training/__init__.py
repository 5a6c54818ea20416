"""concealscan training side: simulation, datasets, the network, training, evaluation, export.

Needs ``pip install 'concealscan[train]'``; the workstation (``detector``) never imports this.
"""
