"""The judges on single objects from real clusters (../shared/realdata, skipped where absent)."""
from __future__ import annotations

import json

import pytest
import yaml

from selftests.preupgrade.test_runs import REALDATA
from utilities.preupgrade import judges as j

GCS_ERROR = "openshift__insights-operator__docs__insights-archive-sample__config__clusteroperator__" \
            "imageregistry.operator.openshift.io__config__cluster.at-1538757-gcs-progressing-error.json"
UPGRADING = "openshift__oc__pkg__cli__admin__upgrade__status__examples__4.15.0-ec2-unavailable-mco-20m-{}.yaml"
NO_VERSION = "openshift__oc__pkg__cli__admin__upgrade__status__examples__no-version-upgrading-{}.yaml"


def _load(name):
    p = REALDATA / name
    if not p.exists():
        pytest.skip(f"real cluster data not found: {p}")
    return json.loads(p.read_text()) if p.suffix == ".json" else yaml.safe_load(p.read_text())


def _item(doc, name):
    items = doc.get("items") if "items" in doc else [doc]
    return next(i for i in items if i["metadata"]["name"] == name)


def test_gcs_config_stuck_unable_to_apply_resources_fails_quoting_it():
    v = j.config_conditions(_load(GCS_ERROR))
    assert v.verdict == "fail", v
    assert "Unable to apply resources: unable to sync storage configuration: unable to get cluster minted " \
           "credentials" in v.reason


def test_clusteroperator_mid_upgrade_warns_naming_node_ca():
    co = _item(_load(UPGRADING.format("co")), "image-registry")
    v = j.clusteroperator(co)
    assert v.verdict == "warn", v
    assert "NodeCADaemon: Unavailable, registry: Ready" in v.reason
    cv = _item(_load(UPGRADING.format("cv")), "version")
    ov = j.operator_version(co, cv)
    assert ov.verdict == "warn" and "already in progress" in ov.reason, ov


def test_clusteroperator_deployment_not_completed_warns():
    v = j.clusteroperator(_item(_load(NO_VERSION.format("co")), "image-registry"))
    assert v.verdict == "warn" and "registry: DeploymentNotCompleted" in v.reason, v
