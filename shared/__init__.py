"""Code used by more than one turnio-ingest service."""
