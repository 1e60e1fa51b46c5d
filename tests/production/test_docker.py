"""docker/: no engine runs here, so check what can be checked without one."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"


def _compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_compose_names_the_services_and_their_order() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "migrate", "scheduler", "dashboard", "nats", "consumer"}
    assert services["consumer"]["command"] == ["consume"] and "-js" in services["nats"]["command"]
    # the stream services start only with --profile stream: the example config has no
    # [models.stream], and a consumer without one would exit and be restarted forever
    assert services["consumer"]["profiles"] == ["stream"] and services["nats"]["profiles"] == ["stream"]
    assert all("profiles" not in services[role] for role in ("postgres", "migrate", "scheduler", "dashboard"))
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for role in ("scheduler", "dashboard"):
        assert services[role]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["scheduler"]["command"] == ["scheduler"]
    assert services["dashboard"]["command"] == ["dashboard"]
    assert "test" in services["postgres"]["healthcheck"]


def test_compose_keeps_secrets_in_files_and_the_port_on_loopback() -> None:
    compose = _compose()
    dashboard = compose["services"]["dashboard"]
    assert dashboard["ports"] == ["127.0.0.1:8050:8050"]
    environment = dashboard["environment"]
    assert environment["MONITOR_DATABASE_URL_FILE"].startswith("/run/secrets/")
    assert environment["MONITOR_API_TOKEN_FILE"] == "/run/secrets/api_token"
    assert environment["MONITOR_BASIC_AUTH_FILE"] == "/run/secrets/basic_auth"
    assert not any(key in environment for key in ("MONITOR_API_TOKEN", "MONITOR_BASIC_AUTH", "MONITOR_DATABASE_URL"))
    assert set(dashboard["secrets"]) <= set(compose["secrets"])
    for service in compose["services"].values():
        for name in service.get("secrets", []):
            assert name in compose["secrets"]
    assert (DOCKER / "Dockerfile").exists()
    for role in ("migrate", "scheduler", "dashboard"):
        service = compose["services"][role]
        assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
        assert service["image"] == "classifier-monitor:latest"
        assert (DOCKER / service["build"]["context"] / service["build"]["dockerfile"]).exists()


def test_the_dockerfile_is_slim_non_root_healthchecked_and_installs_like_ci() -> None:
    instructions = _dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [arg for op, arg in instructions if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    healthchecks = [arg for op, arg in instructions if op == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "/healthz" in healthchecks[0]
    installs = [arg for op, arg in instructions if op == "RUN" and "pip install" in arg]
    assert installs == ['pip install ".[postgres,server]"']
    ci = ROOT / ".ci" / "run"
    if ci.exists():  # what the image installs is what CI installs, minus the test tools
        commands = re.findall(r"pip install[^\n]*", ci.read_text(encoding="utf-8"))
        ci_extras = [set(m.group(1).split(",")) for c in commands if (m := re.search(r"\.\[([^\]]+)\]", c))]
        assert ci_extras, commands
        assert _requirements({"postgres", "server"}) <= _requirements(set().union(*ci_extras))
    # every COPY source exists, and the package's declared extras are real
    for op, arg in instructions:
        if op == "COPY":
            for source in shlex.split(arg)[:-1]:
                assert (ROOT / source).exists(), source
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert {"postgres", "server"} <= set(extras)


def _requirements(extras: set[str]) -> set[str]:
    """The distributions an install of `.[extras]` pulls in, following self-references
    (`classifier-monitor[test]`), by name without versions."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    optional = project["optional-dependencies"]
    names: set[str] = set()
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in optional[extra]:
            name = re.split(r"[<>=!~;\s]", requirement, maxsplit=1)[0].lower()
            if name.startswith(project["name"] + "["):
                todo += name[len(project["name"]) + 1 : -1].split(",")
            else:
                names.add(name)
    return names


def test_the_entrypoint_knows_every_compose_role() -> None:
    script = DOCKER / "entrypoint.sh"
    subprocess.run(["sh", "-n", str(script)], check=True)
    text = script.read_text(encoding="utf-8")
    for service in _compose()["services"].values():
        for role in service.get("command", []) if service.get("image", "").startswith("classifier-monitor") else []:
            assert re.search(rf"^\s*{re.escape(role)}\)", text, re.M), role
    assert "monitor db upgrade" in text and "monitor run" in text
    assert "gunicorn" in text and "dashboards.wsgi:server" in text


@pytest.mark.parametrize("role", ["migrate", "scheduler", "dashboard", "api", "retention", "consume"])
def test_the_entrypoint_runs_the_documented_command(role: str, tmp_path: Path) -> None:
    """Run the entrypoint with stub programs on PATH and record what it execs."""
    for program in ("monitor", "gunicorn"):
        stub = tmp_path / program
        stub.write_text(f'#!/bin/sh\necho {program} "$@"\n', encoding="utf-8")
        stub.chmod(0o755)
    result = subprocess.run(["sh", str(DOCKER / "entrypoint.sh"), role], capture_output=True, text=True,
                            env={"PATH": f"{tmp_path}:/usr/bin:/bin"}, check=True)
    expected = {"migrate": "monitor db upgrade", "scheduler": "monitor run", "retention": "monitor retention",
                "consume": "monitor consume",
                "dashboard": "gunicorn --workers 4 --bind 0.0.0.0:8050", "api": "gunicorn --workers 4"}[role]
    assert result.stdout.startswith(expected)
    if role in ("dashboard", "api"):
        assert "--threads 4" in result.stdout
    if role == "dashboard":
        assert result.stdout.strip().endswith("dashboards.wsgi:server")


def test_the_files_the_dockerfile_copies_build_the_package(tmp_path: Path) -> None:
    """Copy exactly what the Dockerfile copies (before its pip install) and build a wheel from
    it offline: a package or file missing from the COPY lines fails here, not in production."""
    import shutil
    import zipfile

    context = tmp_path / "context"
    context.mkdir()
    for op, arg in _dockerfile_instructions():
        if op == "RUN" and "pip install" in arg:
            break
        if op == "COPY":
            *sources, destination = shlex.split(arg)
            for source in sources:
                target = context if destination in ("./", ".") else context / destination
                origin = ROOT / source
                if origin.is_dir():
                    shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy(origin, target / origin.name)
    expected = ("monitor/cli.py", "monitor/api/wsgi.py", "monitor/locking.py", "dashboards/wsgi.py")
    project = tomllib.loads((context / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert (context / project["readme"]).exists()  # setuptools refuses to build without it
    try:
        import wheel  # noqa: F401 - setuptools < 70.1 needs it for bdist_wheel
    except ImportError:
        # offline and without `wheel`: check what setuptools would package instead
        from setuptools import find_packages

        packages = set(find_packages(where=str(context), include=["monitor*", "dashboards*"]))
        assert {"monitor", "monitor.api", "monitor.store", "dashboards"} <= packages
        assert all((context / module).exists() for module in expected)
        return
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "wheel"), str(context)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    wheel_file = next((tmp_path / "wheel").glob("classifier_monitor-*.whl"))
    names = set(zipfile.ZipFile(wheel_file).namelist())
    for module in expected:
        assert module in names, module
