"""The send path: enqueue an audience into the delivery ledger, claim batches, send, record."""
