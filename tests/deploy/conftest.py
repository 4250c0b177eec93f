"""Rendered manifests, once per session (rendering and validating are pure and cheap)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.kustomize import Doc, render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
TARGETS = ("base", "overlays/production", "overlays/rabbitmq-operator")


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Doc]]:
    return {target: render(K8S / target) for target in TARGETS}


def by_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}
