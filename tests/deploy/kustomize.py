"""A small kustomize for the subset deploy/k8s uses, for machines without `kubectl`.

Supported: `resources` (files and directories), `namespace`, `labels` (without
includeSelectors), `images`, `patches` (strategic-merge files: maps merge, lists of named
items merge by `name`, other lists are replaced), `configMapGenerator` (files, hash suffix
disabled). Anything else raises, so the tests can never silently render something kustomize
would not. Where `kubectl` is installed, tests/deploy compares this output with
`kubectl kustomize` so the two cannot disagree unnoticed.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]

SUPPORTED = frozenset(
    {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}
    | {"configMapGenerator"}
)
CLUSTER_SCOPED = frozenset(
    {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
    | {"PersistentVolume", "StorageClass", "PriorityClass"}
)
POD_TEMPLATE_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"})


class Unsupported(Exception):
    """The kustomization uses something this renderer does not implement."""


def render(directory: Path) -> list[Doc]:
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise Unsupported(f"{directory}: {sorted(unknown)}")
    docs: list[Doc] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            docs.extend(render(path))
        else:
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    for generator in spec.get("configMapGenerator", []):
        docs.append(_config_map(directory, generator))
    for patch in spec.get("patches", []):
        if set(patch) != {"path"}:
            raise Unsupported(f"patch form {sorted(patch)}")
        for change in yaml.safe_load_all((directory / patch["path"]).read_text()):
            _apply_patch(docs, change)
    for group in spec.get("labels", []):
        if group.get("includeSelectors"):
            raise Unsupported("labels.includeSelectors")
        for doc in docs:
            _add_labels(doc, group["pairs"], templates=bool(group.get("includeTemplates")))
    for image in spec.get("images", []):
        for doc in docs:
            _set_image(doc, image)
    if "namespace" in spec:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = spec["namespace"]
    return docs


def _config_map(directory: Path, generator: Doc) -> Doc:
    if not generator.get("options", {}).get("disableNameSuffixHash"):
        raise Unsupported("configMapGenerator with a name hash")
    if set(generator) - {"name", "files", "options"}:
        raise Unsupported(f"configMapGenerator keys {sorted(generator)}")
    data = {Path(f).name: (directory / f).read_text() for f in generator.get("files", [])}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": generator["name"]},
        "data": data,
    }


def _apply_patch(docs: list[Doc], change: Doc) -> None:
    for doc in docs:
        if doc["kind"] == change["kind"] and doc["metadata"]["name"] == change["metadata"]["name"]:
            merged = _merge(doc, change)
            doc.clear()
            doc.update(merged)
            return
    raise Unsupported(f"patch target not found: {change['kind']}/{change['metadata']['name']}")


def _merge(base: Any, change: Any) -> Any:
    if isinstance(base, dict) and isinstance(change, dict):
        out = dict(base)
        for key, value in change.items():
            out[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(change, list) and _named(base) and _named(change):
        out_list = list(base)
        index = {item["name"]: i for i, item in enumerate(out_list)}
        for item in change:
            if item["name"] in index:
                out_list[index[item["name"]]] = _merge(out_list[index[item["name"]]], item)
            else:
                out_list.append(copy.deepcopy(item))
        return out_list
    return copy.deepcopy(change)


def _named(items: list[Any]) -> bool:
    return all(isinstance(item, dict) and "name" in item for item in items)


def _add_labels(doc: Doc, pairs: dict[str, str], *, templates: bool) -> None:
    doc["metadata"].setdefault("labels", {}).update(pairs)
    if templates and doc["kind"] in POD_TEMPLATE_KINDS:
        template = doc["spec"]["template"].setdefault("metadata", {})
        template.setdefault("labels", {}).update(pairs)


def pod_spec(doc: Doc) -> Doc | None:
    if doc["kind"] in POD_TEMPLATE_KINDS:
        spec: Doc = doc["spec"]["template"]["spec"]
        return spec
    return None


def _set_image(doc: Doc, image: Doc) -> None:
    spec = pod_spec(doc)
    if spec is None:
        return
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        name, _, tag = container["image"].partition(":")
        if name == image["name"]:
            container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"


def kubectl_render(directory: Path) -> list[Doc] | None:
    """`kubectl kustomize`'s output, or None when kubectl is not installed."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    out = subprocess.run(
        [kubectl, "kustomize", str(directory)], check=True, capture_output=True, text=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]
