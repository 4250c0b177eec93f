"""ingestctl: the operator's command line for turnio-ingest (`python -m ingestctl --help`)."""
