"""The extension points (monitor/registry.py): every entry loads, the config accepts exactly
the registered names and lists them when a name is unknown, a new entry is one registration,
and an error inside an alert source reaches the caller instead of switching the rule off."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor.alerts.channels import send
from monitor.config import ConfigError, MonitorConfig, parse_config
from monitor.drift import methods
from monitor.errors import UnknownName
from monitor.ingest.chunks import UnreadableFile
from monitor.ingest.readers import file_format
from monitor.rates import one_vs_rest, rate_columns
from monitor.registry import (
    CHANNELS,
    DRIFT_METHODS,
    INPUT_FORMATS,
    METRICS,
    Rate,
    Registry,
    alert_metrics,
)

SENT: list[tuple[str, dict[str, Any]]] = []


def remember(channel: Any, event: dict[str, Any], config: MonitorConfig) -> None:
    """A channel for the test: keeps what it is asked to send."""
    SENT.append((channel.type, event))


def _config_error(document: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(document)
    return str(caught.value)


@pytest.mark.parametrize("registry", [DRIFT_METHODS, CHANNELS, INPUT_FORMATS, METRICS], ids=lambda r: r.kind)
def test_every_registered_entry_loads(registry: Registry) -> None:
    for entry in registry.entries():
        if entry.target is not None:
            assert callable(entry.load()), entry.name


def test_each_kind_of_entry_has_the_interface_its_caller_uses() -> None:
    for name in CHANNELS.names():
        assert list(inspect.signature(CHANNELS.load(name)).parameters) == ["channel", "event", "config"]
    for name in alert_metrics():
        assert list(inspect.signature(METRICS.load(name)).parameters) == ["conn", "ctx", "rule", "spec", "as_of"]
    for name in INPUT_FORMATS.names():
        parameters = inspect.signature(INPUT_FORMATS.load(name)).parameters
        assert {"complete_only", "state", "chunk_rows"} <= set(parameters)
    for name in DRIFT_METHODS.names():
        assert DRIFT_METHODS.entry(name).options["test"] in ("distance", "pvalue")


def test_unknown_names_in_the_config_list_the_registered_ones() -> None:
    message = _config_error({
        "channels": [{"type": "pager"}],
        "models": [{"name": "m", "alerts": [{"name": "a", "metric": "recal"},
                                            {"name": "b", "metric": "drift", "method": "kl"}]}],
    })
    assert ("[[channels]] entry 1: type: unknown channel type 'pager' (registered: webhook, slack, email, "
            "log)") in message
    assert ('[[models.alerts]] name="a" in [[models]] name="m": metric: unknown alert metric \'recal\' '
            f"(registered: {', '.join(alert_metrics())})") in message
    assert ('[[models.alerts]] name="b" in [[models]] name="m": method: unknown drift method \'kl\' '
            "(registered: psi, js, ks, wasserstein, chi2)") in message
    assert "f1" not in alert_metrics()  # not a proportion: no drop test, so no alert rule


def test_registered_requirements_and_thresholds_reach_the_config() -> None:
    message = _config_error({"channels": [{"type": "email"}, {"type": "webhook"}]})
    assert "[[channels]] entry 1: an email channel needs smtp_host, email_from and email_to" in message
    assert "[[channels]] entry 2: a webhook channel needs url" in message
    drift = parse_config({"models": [{"name": "m", "drift": {"psi": 0.3}}]}).models[0].drift
    assert (drift.psi, drift.js, drift.chi2) == (0.3, 0.1, 0.01)  # type: ignore[attr-defined]
    assert ('[[models]] name="m": unknown key \'drift.kl\'' in
            _config_error({"models": [{"name": "m", "drift": {"kl": 1}}]}))
    schema = MonitorConfig.model_json_schema()["$defs"]
    assert schema["Channel"]["properties"]["type"]["enum"] == list(CHANNELS.names())
    assert schema["AlertRule"]["properties"]["metric"]["enum"] == list(alert_metrics())
    assert {"psi", "js", "ks", "wasserstein", "chi2"} <= set(schema["DriftSettings"]["properties"])


def test_a_drift_rule_names_model_features_only() -> None:
    message = _config_error({"models": [{"name": "m", "features": ["size"], "alerts": [
        {"name": "d", "metric": "drift", "features": ["size", "colour"]}]}]})
    assert "alert rule 'd': features not in the model's features: ['colour']" in message


def test_an_unknown_file_type_lists_the_registered_suffixes(tmp_path: Path) -> None:
    assert [file_format(Path(f"x{suffix}")) for suffix in (".CSV.gz", ".ndjson", ".parquet")] == \
        ["csv", "jsonl", "parquet"]
    with pytest.raises(UnreadableFile, match=r"unsupported file type \(use .csv, .csv.gz, .jsonl"):
        file_format(tmp_path / "x.xlsx")
    with pytest.raises(UnknownName, match=r"unknown input format 'xlsx' \(registered: csv, jsonl, parquet\)"):
        INPUT_FORMATS.entry("xlsx")


def test_a_new_channel_is_one_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = dict(CHANNELS._entries)
    monkeypatch.setattr(CHANNELS, "_entries", entries)
    CHANNELS.register("memory", f"{__name__}:remember", requires=())
    config = parse_config({"channels": [{"type": "memory"}]})
    send(config.channels[0], {"kind": "firing"}, config)
    assert SENT[-1] == ("memory", {"kind": "firing"})


def test_a_new_rate_is_one_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(METRICS, "_entries", dict(METRICS._entries))
    METRICS.register("specificity", "monitor.alerts.sources:rate_observations", label="Specificity",
                     rate=Rate({"tn": 1}, {"tn": 1, "fp": 1}))
    assert rate_columns()[-3:] == ["specificity", "specificity_low", "specificity_high"]
    rates = one_vs_rest(np.array([5]), np.array([2]), np.array([1]), np.array([8]))
    assert list(rates)[:7] == ["precision", "recall", "f1", "recall_low", "recall_high", "precision_low",
                               "precision_high"]
    assert rates["specificity"][0] == pytest.approx(0.8) and 0 < rates["specificity_low"][0] < 0.8
    rule = parse_config({"models": [{"name": "m", "alerts": [{"name": "s", "metric": "specificity"}]}]})
    assert rule.models[0].alerts[0].metric == "specificity"


def test_a_new_drift_method_is_one_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DRIFT_METHODS, "_entries", dict(DRIFT_METHODS._entries))
    DRIFT_METHODS.register("l1", f"{__name__}:total_variation", kinds=("categorical",), threshold=0.2,
                           test="distance", label="Total variation")
    histograms = methods.Histograms(np.array([[0.0, 5, 5]]), np.array([[0.0, 10, 0]]), np.zeros((1, 3)),
                                    np.zeros((1, 3)), coarse=np.array([0, 1, 2]), n_coarse=3)
    values = methods.compute(histograms, "categorical")
    assert list(values) == ["psi", "js", "chi2", "l1"] and values["l1"][0] == pytest.approx(0.5)
    assert methods.methods_for("numeric") == ("psi", "js", "ks", "wasserstein")


def total_variation(h: methods.Histograms) -> np.ndarray:
    p = h.coarse_reference / h.coarse_reference.sum(axis=1, keepdims=True)
    q = h.coarse_current / h.coarse_current.sum(axis=1, keepdims=True)
    return np.abs(p - q).sum(axis=1) / 2
