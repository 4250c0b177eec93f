"""The Dockerfile cannot be built here (no engine); its load-bearing choices are checked."""

from __future__ import annotations

import re

from tests.deploy.conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
IGNORED = (ROOT / ".dockerignore").read_text().split()


def _stages() -> list[str]:
    return re.split(r"^FROM ", DOCKERFILE, flags=re.MULTILINE)[1:]


def test_two_stages_on_python_311_slim() -> None:
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", DOCKERFILE, re.MULTILINE)
    assert [s.split()[0] for s in _stages()] == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]


def test_dependencies_come_from_the_lock_in_the_builder() -> None:
    builder, final = _stages()
    assert "-c requirements.lock" in builder
    assert "pip install" not in final
    assert "COPY --from=builder /opt/venv /opt/venv" in final


def test_final_stage_runs_as_uid_10001_and_defaults_to_the_gateway() -> None:
    final = _stages()[-1]
    assert re.search(r"^USER 10001:10001$", final, re.MULTILINE)
    assert 'CMD ["python", "-m", "services.webhook_gateway"]' in final
    # The read-only root filesystem in the cluster: bytecode compiled at build time.
    assert "compileall" in final
    for package in ("shared", "services", "migrations", "ingestctl"):
        assert f"COPY {package}/ {package}/" in final


def test_dockerignore_keeps_the_context_small_and_secret_free() -> None:
    for pattern in (".git", ".venv", "tests/", ".env", "**/__pycache__"):
        assert pattern in IGNORED
