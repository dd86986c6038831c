"""Imports, one job each, from every door: ``files`` reads a file and stages what it would
write, ``jobs`` runs, queues, previews and undoes them (``ImportService``), ``workers`` claim
queued jobs and hold the leases of running ones, ``processes`` are the helpers that read big
files."""

from server.services.imports.files import DELIMITERS, FileReader, ImportRequest, Upload, iso
from server.services.imports.jobs import ImportService, Preview
from server.services.imports.processes import ParseProcesses

__all__ = ["DELIMITERS", "FileReader", "ImportRequest", "ImportService", "ParseProcesses", "Preview", "Upload", "iso"]
