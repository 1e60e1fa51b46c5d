"""The filter bar's URL form: shareable, and never trusting what the query string says."""

from __future__ import annotations

from dashboards.filters import DAY, HOUR, Filters, apply_query, from_inputs, parse_query, to_query


def test_a_query_string_round_trips_every_filter() -> None:
    filters = Filters(model="triage", window="30d", start="2024-01-01", end="2024-02-15",
                      cls="critical", segment="region")
    assert apply_query(Filters(), to_query(filters)) == filters


def test_absent_keys_keep_the_current_values() -> None:
    current = Filters(model="a", window="1d", cls="x", segment="sex")
    assert apply_query(current, "?class=y") == Filters(model="a", window="1d", cls="y", segment="sex")


def test_malformed_values_are_dropped() -> None:
    query = "?window=13d&from=2024-13-45&to=yesterday&model=m"
    assert parse_query(query) == {"model": "m"}


def test_hostile_values_are_kept_as_plain_text_and_encoded() -> None:
    filters = Filters(model="m", cls="<script>alert(1)</script>", segment="a&b")
    query = to_query(filters)
    assert "<" not in query and "&b" not in query.split("segment=")[1]
    assert apply_query(Filters(), query).cls == "<script>alert(1)</script>"
    assert apply_query(Filters(), query).segment == "a&b"


def test_step_is_a_day_for_day_windows_and_dates_are_inclusive() -> None:
    filters = from_inputs("m", "7d", "2024-01-01T00:00:00", "2024-01-02", None, None)
    assert filters.step_seconds == DAY
    start, end = filters.bounds()
    assert end - start == 2 * DAY
    assert Filters(window="1d").step_seconds == DAY
    assert from_inputs("m", "bogus", None, None, None, None).window == "7d"
    assert HOUR == 3600
