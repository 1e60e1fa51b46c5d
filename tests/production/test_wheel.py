"""The built wheel works on its own: installed (not editable) into a fresh virtual environment
and run from a folder outside the repository, `monitor init`, `ingest`, `metrics` and
`db upgrade` work without the source tree and without $MONITOR_ALEMBIC_DIR (issue 16)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from datetime import datetime, timedelta, timezone
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# what setuptools reads to build the wheel (the rest of the repository is not packaged)
BUILD_INPUTS = ("pyproject.toml", "README.md", "monitor", "dashboards")


def _local_build_tools() -> bool:
    """setuptools >= 68 (and `wheel`, which setuptools < 70.1 needs) here: build offline."""
    try:
        setuptools = tuple(int(part) for part in version("setuptools").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return False
    if setuptools < (68, 0):
        return False
    return setuptools >= (70, 1) or find_spec("wheel") is not None


def _build_wheel(tmp_path: Path) -> Path:
    """Build from a copy of the build inputs, so a stale build/ folder in the working tree
    cannot reach the wheel (setuptools reuses build/lib) and nothing is written into the tree."""
    source = tmp_path / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(origin, source / name)
    # without setuptools >= 68 here, pip fetches it (and wheel) from the index into an isolated env
    isolation = ["--no-build-isolation"] if _local_build_tools() else []
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *isolation, "-w", str(tmp_path / "dist"),
         str(source)],
        capture_output=True, text=True, timeout=240,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return next((tmp_path / "dist").glob("classifier_monitor-*.whl"))


def _venv_with(wheel_file: Path, tmp_path: Path) -> Path:
    """A fresh venv that borrows the dependencies installed here and holds the wheel itself."""
    environment = tmp_path / "venv"
    # pip >= 22.3 installs into another interpreter (--python); an older one needs its own copy
    pip_here = tuple(int(part) for part in version("pip").split(".")[:2]) >= (22, 3)
    venv.EnvBuilder(system_site_packages=True, with_pip=not pip_here).create(environment)
    python = environment / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python)] if pip_here else [str(python), "-m", "pip"]
    installed = subprocess.run([*pip, "install", "-q", "--no-deps", "--no-index", "--force-reinstall",
                                str(wheel_file)], capture_output=True, text=True, timeout=120)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return environment


def _clean_environment(environment: Path) -> dict[str, str]:
    """No MONITOR_* settings (MONITOR_ALEMBIC_DIR above all), no PYTHONPATH, the venv first on PATH."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("MONITOR_") and key not in ("PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{environment / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(environment)
    return env


def _write_logs(workspace: Path) -> int:
    """A tiny prediction log and its labels where the example monitor.toml reads them
    (logs/predictions/*, logs/labels/*; model triage), hours before now."""
    classes = ["routine", "urgent", "critical"]
    start = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    predictions = ["prediction_id,timestamp,prediction,score_routine,score_urgent,score_critical,"
                   "sex,age_band,region,num_0,num_1,cat_0"]
    labels = ["prediction_id,label,label_timestamp"]
    count = 60
    for index in range(count):
        stamp = start + timedelta(minutes=5 * index)
        predicted, truth = classes[index % 3], classes[(index // 2) % 3]
        scores = [0.8 if name == predicted else 0.1 for name in classes]
        predictions.append(
            f"p{index},{stamp.isoformat().replace('+00:00', 'Z')},{predicted},{scores[0]},{scores[1]},"
            f"{scores[2]},{'fm'[index % 2]},{('<40', '40+')[index % 2]},{('north', 'south')[index % 3 == 0]},"
            f"{index / 10:.1f},{(count - index) / 7:.2f},{'abc'[index % 3]}"
        )
        labels.append(f"p{index},{truth},{(stamp + timedelta(minutes=30)).isoformat().replace('+00:00', 'Z')}")
    (workspace / "logs" / "predictions" / "predictions.csv").write_text("\n".join(predictions) + "\n",
                                                                           encoding="utf-8")
    (workspace / "logs" / "labels" / "labels.csv").write_text("\n".join(labels) + "\n", encoding="utf-8")
    return count


def _repository_head() -> str:
    """The head of the chain in the repository, through alembic.ini as developers reach it."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(Config(str(ROOT / "alembic.ini"))).get_current_head()
    assert head is not None
    return head


@pytest.fixture(scope="module")
def wheel_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_wheel(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_carries_its_migrations_and_dashboard_files(wheel_file: Path) -> None:
    names = set(zipfile.ZipFile(wheel_file).namelist())
    versions = {path.name for path in (ROOT / "monitor" / "migrations" / "versions").glob("*.py")}
    assert versions and {f"monitor/migrations/versions/{name}" for name in versions} <= names
    assert {"monitor/migrations/env.py", "monitor/migrations/script.py.mako", "monitor/py.typed"} <= names
    for folder, pattern in (("dashboards/assets", "*"), ("dashboards/pages", "*.py")):
        expected = {f"{folder}/{path.name}" for path in (ROOT / folder).glob(pattern) if path.is_file()}
        assert expected and expected <= names, folder
    assert not any(name.startswith(("alembic/", "tests/")) for name in names)


def test_an_installed_wheel_inits_ingests_and_reports_outside_the_repository(
    wheel_file: Path, tmp_path: Path
) -> None:
    environment = _venv_with(wheel_file, tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    assert ROOT not in outside.resolve().parents
    env = _clean_environment(environment)
    monitor = str(environment / "bin" / "monitor")

    def run(*args: str, cwd: Path) -> str:
        result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
        return result.stdout

    where = run(str(environment / "bin" / "python"), "-c",
                "import monitor, monitor.store.migrate as m; print(monitor.__file__); print(m.script_location())",
                cwd=outside).split()
    assert all(Path(path).resolve().is_relative_to(environment.resolve()) for path in where), where

    run(monitor, "init", "workspace", cwd=outside)
    workspace = outside / "workspace"
    assert (workspace / "monitor.toml").exists()
    count = _write_logs(workspace)

    run(monitor, "ingest", "--no-progress", cwd=workspace)
    records = json.loads(run(monitor, "metrics", "--model", "triage", "--segment", "*", "--format", "json",
                             cwd=workspace))
    assert records, "no metrics from an ingested log"
    assert max(record["n_predictions"] for record in records) == count
    assert {record["class"] for record in records} == {"routine", "urgent", "critical"}

    upgraded = run(monitor, "db", "upgrade", cwd=workspace)
    assert upgraded.strip() == f"database at revision {_repository_head()}"
