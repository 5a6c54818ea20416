"""The operator station: scan store, decisions database, service, watch folder, web viewer.

Only `detector.commands.serve` imports FastAPI; everything else here is stdlib + the detector,
so the watch folder and the user tools work from ``pip install .`` alone.
"""
