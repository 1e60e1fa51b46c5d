"""The domain commands of the `monitor` CLI (drift, fairness, alerts and their actions),
registered by `monitor.cli`. Front ends like the rest of the CLI: they parse options, read
through `monitor.read` and print; they live outside the engine packages so that no engine
package imports the read layer that imports it."""
