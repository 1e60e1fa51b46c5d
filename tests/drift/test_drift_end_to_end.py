"""End to end: simulated logs and reference file -> `monitor ingest` (a real tick) ->
`monitor drift`: the seeded covariate shift is flagged from its day on, and not before."""

from __future__ import annotations

import json

import pandas as pd
from click.testing import CliRunner

from monitor.cli import main
from monitor.simulate import Fault, Scenario, simulate, write_config, write_logs


def test_a_seeded_covariate_shift_is_flagged_through_ingest_and_the_cli(sqlite_url, tmp_path):
    scenario = Scenario(days=8, rows_per_day=800, reference_rows=4000, faults=[
        Fault(start_day=5, kind="covariate", segment=None, value=None, drift_feature="num_0", shift=1.0)])
    data = simulate(scenario, seed=3)
    write_logs(data, tmp_path, fmt="parquet")
    config = write_config(tmp_path, scenario, database_url=sqlite_url)
    runner = CliRunner()
    ingested = runner.invoke(main, ["--config", str(config), "ingest", "--as-of", "2024-01-09T00:00:00Z"])
    assert ingested.exit_code == 0, ingested.output
    result = runner.invoke(main, ["--config", str(config), "drift", "--window", "1d", "--segment", "*",
                                  "--feature", "num_0", "--feature", "num_1", "--format", "json"])
    assert result.exit_code == 0, result.output
    frame = pd.DataFrame(json.loads(result.output))
    assert set(frame["feature"]) == {"num_0", "num_1"} and len(frame["end"].unique()) == 8
    flags = frame[frame.method == "js"].pivot_table(index="end", columns="feature", values="drifted", aggfunc="first")
    assert flags["num_0"].tolist() == [False] * 5 + [True] * 3
    assert not flags["num_1"].any()
    assert (frame["n_current"] >= 700).all() and (frame["n_reference"] == 4000).all()
