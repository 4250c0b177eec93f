"""The turnio-ingest services, each runnable as `python -m services.<name>`."""
