"""The writer: broker -> PostgreSQL in batches, idempotently, with a dead-letter queue."""
