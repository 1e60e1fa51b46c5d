"""`python -m monitor.simulate --out DIR --days N --seed S [--fault ...]`: write simulated logs
and a matching monitor.toml to DIR.

A fault is `key=value` pairs separated by commas, e.g.
`--fault start_day=14,segment=region,value=south,cls=critical,kind=concept,recall_factor=0.1`
or `--fault start_day=7,kind=covariate,segment=none,drift_feature=num_0,shift=1.5`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from monitor.simulate.files import FORMATS, write_config, write_logs
from monitor.simulate.generate import simulate
from monitor.simulate.scenario import Fault, Scenario


def parse_fault(text: str) -> Fault:
    """`start_day=14,segment=region,value=south` -> Fault; `none` means None."""
    types = {f.name: f.type for f in fields(Fault)}
    values: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, raw = item.partition("=")
        if not sep or key not in types:
            raise argparse.ArgumentTypeError(
                f"bad fault item {item!r}: use key=value with keys {', '.join(types)}"
            )
        if raw.lower() == "none":
            values[key] = None
        elif key in ("start_day", "end_day"):
            values[key] = int(raw)
        elif key in ("recall_factor", "shift", "flatten", "prior_factor"):
            values[key] = float(raw)
        else:
            values[key] = raw
    if "start_day" not in values:
        raise argparse.ArgumentTypeError("a fault needs start_day")
    try:
        return Fault(**values)  # type: ignore[arg-type]
    except (TypeError, ValueError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitor.simulate", description=__doc__)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--rows-per-day", type=int, default=2000)
    parser.add_argument("--start", default="2024-01-01")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--regions", type=int, default=4, help="number of region values")
    parser.add_argument("--numeric", type=int, default=4, help="numeric features")
    parser.add_argument("--categorical", type=int, default=2, help="categorical features")
    parser.add_argument("--format", choices=FORMATS, default="csv")
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--files-per-day", type=int, default=1)
    parser.add_argument("--fault", type=parse_fault, action="append", default=[])
    parser.add_argument("--database-url", default="sqlite:///monitor.db")
    args = parser.parse_args(argv)
    try:
        scenario = Scenario(
            start=args.start,
            days=args.days,
            rows_per_day=args.rows_per_day,
            n_regions=args.regions,
            n_numeric=args.numeric,
            n_categorical=args.categorical,
            faults=args.fault,
        )
    except ValueError as error:
        parser.error(str(error))
    data = simulate(scenario, seed=args.seed)
    paths = write_logs(
        data, args.out, fmt=args.format, gzip=args.gzip, files_per_day=args.files_per_day
    )
    config = write_config(args.out, scenario, database_url=args.database_url)
    print(
        f"{len(data.predictions)} predictions in {len(paths['predictions'])} files, "
        f"{len(data.labels)} label rows in {len(paths['labels'])} files, "
        f"reference {paths['reference']}, config {config}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
