"""Bulk-file archives: the seam (``base``) and the generic HTTP reader every exchange's
reader builds on (``http_reader``: ``calendar`` plans, ``fetch`` downloads and verifies,
``decode`` decompresses and parses in bounded blocks, ``checks`` judges units and rows).

An exchange's reader is ``sources/<exchange>/archives.py``; build one with
``dccd_core.sources.registry.build_archive_reader``.
"""

from .base import ArchiveFile, ArchiveRead, ArchiveReader, ArchiveUnavailable, IngestedFile
from .calendar import Period, archive_periods
from .decode import CsvLayout
from .http_reader import FileState, HttpArchiveReader

__all__ = [
    "ArchiveFile",
    "ArchiveRead",
    "ArchiveReader",
    "ArchiveUnavailable",
    "CsvLayout",
    "FileState",
    "HttpArchiveReader",
    "IngestedFile",
    "Period",
    "archive_periods",
]
