"""The read layer: what every front end (CLI, HTTP API, Prometheus, dashboard) reads through.

- `monitor.read.context`: a model's context without writing (a model never ingested gets a
  context that matches no stored row, so every read is empty with the right columns).
- `monitor.read.windows`: the window of a query, and the default window from the data range.
- `monitor.read.services`: typed calls to the engine's services (metrics, drift, fairness,
  alerts, label arrival, the ingest ledger, health).

Front ends parse their input, call these functions and format the answer; none runs SQL.
Writers (ingest, tick, retention) keep `monitor.context.load_context`, which inserts the model.
"""
