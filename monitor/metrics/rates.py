"""Moved to `monitor.rates` (a leaf module, so that metrics and estimation do not import each
other); kept so that `monitor.metrics.rates` imports keep working."""

from monitor.rates import Z95, one_vs_rest, safe_divide, wilson_interval

__all__ = ["Z95", "one_vs_rest", "safe_divide", "wilson_interval"]
