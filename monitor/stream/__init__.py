"""Stream ingestion (issue 17, docs/scaling.md): a model's predictions and labels read from a
message broker by `monitor consume`, in batches that are validated and ingested in one
transaction each, exactly like the HTTP write API, and acknowledged only after commit.

- `models`: the `stream_consumers` table (counts and lag per durable consumer).
- `source`: the `Source` interface every broker implements (`Delivery`, `Batch`).
- `jetstream`: NATS JetStream (pull, durable consumer shared by all processes).
- `consumer`: the loop: fetch a batch, ingest it, commit, acknowledge.
- `status`: reads of the table (for /metrics and the Data page).
"""
