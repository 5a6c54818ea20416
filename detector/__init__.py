"""concealscan workstation side: read scans, run the exported detector, report results.

Nothing here imports torch or ``training`` (proved by ``tests/test_boundary.py``).
"""

from detector.errors import ScanError, UsageError
from detector.readers import ScanRef, discover_scans, read_scan
from detector.scan import Scan

__all__ = ["Scan", "ScanError", "ScanRef", "UsageError", "discover_scans", "read_scan"]
__version__ = "0.1.0"
