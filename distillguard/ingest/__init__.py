"""Readers that turn provider logs into exchange records, and the ingest loop that stores them."""

from distillguard.ingest.registry import READERS, get_reader, register_reader
from distillguard.ingest.run import IngestResult, ingest_paths

__all__ = ["READERS", "IngestResult", "get_reader", "ingest_paths", "register_reader"]
