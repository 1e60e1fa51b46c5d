"""Drift verdicts and edge cases: seeded shifts flagged, same-distribution windows not,
degenerate inputs give defined results, reference period, reference-derived thresholds, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.drift.service import drift_frame
from monitor.store.db import make_engine
from monitor.store.windows import WindowSpec
from tests.drift.helpers import load, model_config
from tests.drift.test_drift_values import DAY, START, log_frame

COLORS = {"red": 0.5, "green": 0.3, "blue": 0.2}


def days(rng, n_days, rows, *, shifted_from=None, shift=0.5, first=0):
    out = []
    for day in range(first, first + n_days):
        moved = shifted_from is not None and day >= shifted_from
        out.append(log_frame(rng, rows, day=day, shift=shift if moved else 0.0,
                             cat_probs={"red": 0.2, "green": 0.3, "blue": 0.5} if moved else COLORS))
    return out


def verdicts(frame, feature):
    rows = frame[(frame.feature == feature) & (frame.segment == "*")]
    return rows.pivot_table(index="end", columns="method", values="drifted", aggfunc="first")


def test_a_seeded_shift_is_flagged_and_same_distribution_windows_are_not(sqlite_url):
    """30 independent same-distribution days and 10 shifted days (0.5 std, a category mix
    change), 1000 rows a day against 5000 reference rows: every method flags every shifted
    day, and the false-flag rate on the 30 clean days x 2 features is stated in docs/drift.md."""
    rng = np.random.default_rng(11)
    reference = log_frame(rng, 5000, day=-60, cat_probs=COLORS).drop(columns=["timestamp"])
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        ctx = load(conn, model_config(["color", "size"]), reference, days(rng, 40, 1000, shifted_from=30))
        frame = drift_frame(conn, ctx, WindowSpec(DAY, DAY), segment="*")
    size, color = verdicts(frame, "size"), verdicts(frame, "color")
    assert size.iloc[30:].all().all() and color.iloc[30:].all().all()
    clean = pd.concat([size.iloc[:30], color.iloc[:30]], axis=1)
    # fixed distance thresholds: no false flag in 30 clean windows; chi2 at p < 0.01 may flag
    assert not clean.drop(columns=["chi2"]).any().any()
    assert clean["chi2"].sum() <= 2


def test_unseen_categories_all_missing_windows_constant_features_and_empty_segments(sqlite_url):
    rng = np.random.default_rng(3)
    reference = log_frame(rng, 2000, day=-30, cat_probs=COLORS).drop(columns=["timestamp"])
    reference["flat"] = 5.0
    reference["region"] = "north"  # no reference rows for south: an empty reference segment
    day0 = log_frame(rng, 500, day=0, cat_probs={"violet": 0.5, "teal": 0.5})  # only unseen
    day0["flat"] = 5.0
    day1 = log_frame(rng, 500, day=1, cat_probs=COLORS)
    day1[["size", "color", "flat"]] = np.nan  # every feature missing
    day2 = log_frame(rng, 500, day=3, cat_probs=COLORS)  # day 2 has no rows at all
    day2["flat"] = 7.0
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        ctx = load(conn, model_config(["color", "size", "flat"]), reference, [day0, day1, day2])
        frame = drift_frame(conn, ctx, WindowSpec(DAY, DAY))
    overall = frame[frame.segment == "*"].set_index(["end", "feature", "method"])
    # unseen categories all land in "other": maximal distance, flagged
    assert overall.loc[("2024-01-02T00:00:00Z", "color", "js"), "value"] == pytest.approx(1.0)
    assert overall.loc[("2024-01-02T00:00:00Z", "color", "js"), "drifted"]
    # an all-missing window: distances on the missing bin, KS/Wasserstein undefined (null)
    assert overall.loc[("2024-01-03T00:00:00Z", "size", "js"), "drifted"]
    assert np.isnan(overall.loc[("2024-01-03T00:00:00Z", "size", "ks"), "value"])
    # a window with no rows: null values, not drifted
    empty = overall.loc["2024-01-04T00:00:00Z"]
    assert empty["value"].isna().all() and not empty["drifted"].any() and (empty["n_current"] == 0).all()
    # a constant feature: no shift = 0; a changed constant is flagged; Wasserstein/std undefined
    assert overall.loc[("2024-01-02T00:00:00Z", "flat", "ks"), "value"] == 0.0
    assert overall.loc[("2024-01-05T00:00:00Z", "flat", "ks"), "drifted"]
    assert np.isnan(overall.loc[("2024-01-05T00:00:00Z", "flat", "wasserstein"), "value"])
    # a segment value absent from the reference: null, never drifted
    south = frame[(frame.segment == "region") & (frame.segment_value == "south")]
    assert len(south) and south["value"].isna().all() and not south["drifted"].any()
    assert (south["n_reference"] == 0).all()


def test_a_reference_period_defines_bins_and_reference_from_production(sqlite_url):
    rng = np.random.default_rng(5)
    model = model_config(["color", "size"])
    model.reference_period = ("2024-01-01", "2024-01-11")
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        ctx = load(conn, model, None, days(rng, 20, 800, shifted_from=15))
        frame = drift_frame(conn, ctx, WindowSpec(DAY, DAY), segment="*")
    size = verdicts(frame, "size")
    assert len(size) == 20
    assert not size.iloc[:15].drop(columns=[]).any().any()
    assert size.iloc[15:].all().all()
    n_reference = frame[(frame.feature == "size") & (frame.method == "js")]["n_reference"]
    assert (n_reference == 8000).all()


def test_reference_thresholds_follow_the_variability_of_the_reference(sqlite_url):
    rng = np.random.default_rng(9)
    reference = log_frame(rng, 20000, day=-60, cat_probs=COLORS).drop(columns=["timestamp"])
    model = model_config(["size"], thresholds="reference")
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        ctx = load(conn, model, reference, days(rng, 12, 2000, shifted_from=10))
        frame = drift_frame(conn, ctx, WindowSpec(DAY, DAY))
    rows = frame[(frame.feature == "size") & (frame.method == "js")]
    overall, north = rows[rows.segment == "*"], rows[rows.segment_value == "north"]
    assert overall["threshold"].nunique() == 1 and overall["threshold"].iloc[0] != 0.1
    assert north["threshold"].iloc[0] > overall["threshold"].iloc[0]  # fewer rows, noisier chunks
    flags = verdicts(frame, "size")
    assert flags.iloc[10:].all().all()
    assert flags.iloc[:10].drop(columns=[]).sum().sum() <= 2


def test_windows_must_be_multiples_of_the_drift_bucket(sqlite_url):
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        ctx = load(conn, model_config(["size"]), None, [])
        with pytest.raises(ValueError, match="multiples"):
            drift_frame(conn, ctx, WindowSpec(3600, 3600))
        with pytest.raises(ValueError, match="unknown feature"):
            drift_frame(conn, ctx, WindowSpec(DAY, DAY), features=["nope"])


def test_the_drift_command_prints_contract_records(sqlite_url, tmp_path):
    rng = np.random.default_rng(1)
    reference = log_frame(rng, 3000, day=-30, cat_probs=COLORS).drop(columns=["timestamp"])
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        load(conn, model_config(["color", "size"]), reference, days(rng, 9, 500, shifted_from=7))
    config = tmp_path / "monitor.toml"
    config.write_text(f'database_url = "{sqlite_url}"\n[[models]]\nname = "m"\nclasses = ["a", "b", "c"]\n'
                      'segments = ["region"]\nfeatures = ["color", "size"]\n')
    result = CliRunner().invoke(main, ["--config", str(config), "drift", "--model", "m", "--window", "2d",
                                       "--segment", "*", "--feature", "size", "--format", "json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    assert {r["feature"] for r in records} == {"size"} and {r["window"] for r in records} == {"2d"}
    last = [r for r in records if r["end"] == "2024-01-10T00:00:00Z"]
    assert last and all(r["drifted"] for r in last)
    bad = CliRunner().invoke(main, ["--config", str(config), "drift", "--window", "1h", "--step", "1h"])
    assert bad.exit_code == 2 and "multiples" in bad.output
    assert START  # the shared epoch of the fixtures


def test_a_big_window_flags_a_trivial_shift_with_chi2_but_not_with_distances(sqlite_url):
    """The known complaint about p-values: with 40,000 rows a 2-point move of one category's
    share is 'significant' (chi2), while the distances stay far below their thresholds."""
    rng = np.random.default_rng(21)
    reference = log_frame(rng, 40000, day=-60, cat_probs=COLORS).drop(columns=["timestamp"])
    current = log_frame(rng, 40000, day=0, cat_probs={"red": 0.48, "green": 0.30, "blue": 0.22}, shift=0.02)
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        ctx = load(conn, model_config(["color", "size"]), reference, [current])
        frame = drift_frame(conn, ctx, WindowSpec(DAY, DAY), segment="*")
    flags = frame.set_index(["feature", "method"])["drifted"]
    assert flags[("color", "chi2")]
    assert not flags[("color", "js")] and not flags[("color", "psi")]
    assert not flags.loc["size"].any()
