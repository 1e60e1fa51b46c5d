"""The alert statistics, kept importable here: they live in the leaf `monitor.stats` (used by
both `monitor.alerts` and `monitor.incidents`, which must not import each other both ways)."""

from monitor.stats import Z95, benjamini_hochberg, drop_p_value, exact_below, wilson_interval

__all__ = ["Z95", "benjamini_hochberg", "drop_p_value", "exact_below", "wilson_interval"]
