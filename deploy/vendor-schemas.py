#!/usr/bin/env python3
"""Regenerates deploy/src/test/resources/schemas/ (the API schemas ManifestSchemaTest validates against)
from local git mirrors of the two upstream repositories, so that the tests never reach the network.

    deploy/vendor-schemas.py STRIMZI_GIT_DIR KUBERNETES_CLIENT_PYTHON_GIT_DIR

- Strimzi: the CRDs of the kinds the manifests use and kafka-versions.yaml, copied byte for byte from the
  release tag STRIMZI_TAG of strimzi/strimzi-kafka-operator.
- Kubernetes: api/openapi-spec/swagger.json of the release branch KUBERNETES_BRANCH, as kubernetes-client/python
  keeps it unprocessed (kubernetes/swagger.json.unprocessed) at KUBERNETES_CLIENT_COMMIT. Trimmed to the
  definitions the kinds in KUBERNETES_KINDS reach; each kept definition is unchanged.

A new kind in the manifests fails ManifestSchemaTest ("no schema for ..."): add it here and rerun.
"""
import json
import subprocess
import sys
from pathlib import Path

STRIMZI_TAG = "1.1.0"
STRIMZI_FILES = {
    "install/cluster-operator/040-Crd-kafka.yaml": "040-Crd-kafka.yaml",
    "install/cluster-operator/043-Crd-kafkatopic.yaml": "043-Crd-kafkatopic.yaml",
    "install/cluster-operator/044-Crd-kafkauser.yaml": "044-Crd-kafkauser.yaml",
    "install/cluster-operator/045-Crd-kafkanodepool.yaml": "045-Crd-kafkanodepool.yaml",
    "kafka-versions.yaml": "kafka-versions.yaml",
}
KUBERNETES_BRANCH = "release-1.36"
KUBERNETES_CLIENT_COMMIT = "ac0ee5091f0b801911c906558030e2624a26bdf8"
KUBERNETES_SPEC = "kubernetes/swagger.json.unprocessed"
# (group, version, kind) of every built-in kind the manifests render to.
KUBERNETES_KINDS = [
    ("", "v1", "Namespace"),
    ("", "v1", "ConfigMap"),
    ("", "v1", "Secret"),
    ("", "v1", "Service"),
    ("", "v1", "PersistentVolumeClaim"),
    ("apps", "v1", "Deployment"),
    ("autoscaling", "v2", "HorizontalPodAutoscaler"),
    ("policy", "v1", "PodDisruptionBudget"),
    ("networking.k8s.io", "v1", "NetworkPolicy"),
]
# Custom resources are validated with ObjectMeta as their metadata, as the API server does.
ALSO_KEPT = ["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]

OUT = Path(__file__).resolve().parent / "src/test/resources/schemas"


def git_show(repository, revision, path):
    return subprocess.run(["git", "-C", repository, "show", f"{revision}:{path}"], check=True,
                          capture_output=True).stdout


def references(node, found):
    if isinstance(node, dict):
        reference = node.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/definitions/"):
            found.add(reference[len("#/definitions/"):])
        for value in node.values():
            references(value, found)
    elif isinstance(node, list):
        for value in node:
            references(value, found)


def main(strimzi, kubernetes_client):
    strimzi_out = OUT / f"strimzi-{STRIMZI_TAG}"
    strimzi_out.mkdir(parents=True, exist_ok=True)
    for source, target in STRIMZI_FILES.items():
        (strimzi_out / target).write_bytes(git_show(strimzi, STRIMZI_TAG, source))

    spec = json.loads(git_show(kubernetes_client, KUBERNETES_CLIENT_COMMIT, KUBERNETES_SPEC))
    definitions = spec["definitions"]
    roots = list(ALSO_KEPT)
    for group, version, kind in KUBERNETES_KINDS:
        matching = [name for name, schema in definitions.items()
                    if {"group": group, "version": version, "kind": kind} in schema.get("x-kubernetes-group-version-kind", [])]
        if len(matching) != 1:
            sys.exit(f"{group}/{version} {kind}: {len(matching)} definitions in the spec")
        roots.append(matching[0])
    kept, pending = set(), list(roots)
    while pending:
        name = pending.pop()
        if name not in kept:
            kept.add(name)
            found = set()
            references(definitions[name], found)
            pending.extend(found - kept)
    trimmed = {"swagger": spec["swagger"], "info": spec["info"],
               "definitions": {name: schema for name, schema in definitions.items() if name in kept}}
    kubernetes_out = OUT / f"kubernetes-{KUBERNETES_BRANCH.removeprefix('release-')}"
    kubernetes_out.mkdir(parents=True, exist_ok=True)
    (kubernetes_out / "swagger.json").write_text(json.dumps(trimmed, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(kept)} of {len(definitions)} Kubernetes definitions kept")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
