"""Advisory intelligence: OSV import, version schemes per ecosystem, matching.

Pure logic (``versions``, ``osv``, ``matching``, ``vulnmatch`` (an image's packages ->
vulnerabilities), ``aliases``, ``severity``, ``ecosystems``) is separate from I/O
(``loader`` reads files and archives, ``store`` is the SQLite database, ``cli`` is
``vigil intel``).
"""

from .advisory import Advisory, Affected, Event, Range, Reference
from .aliases import Vulnerability, group_by_aliases, merge_matches
from .loader import load_osv
from .matching import AdvisoryIndex, Match
from .report import ImportReport, Rejection
from .store import AdvisoryStore, default_db_path

__all__ = [
    "Advisory",
    "AdvisoryIndex",
    "AdvisoryStore",
    "Affected",
    "Event",
    "ImportReport",
    "Match",
    "Range",
    "Reference",
    "Rejection",
    "Vulnerability",
    "default_db_path",
    "group_by_aliases",
    "load_osv",
    "merge_matches",
]
