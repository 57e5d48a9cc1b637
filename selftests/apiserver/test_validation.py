"""CRD-style validation of configs.imageregistry.operator.openshift.io."""
from __future__ import annotations

import pytest
from kubernetes.client.rest import ApiException

from .helpers import status_of

G, V, P = "imageregistry.operator.openshift.io", "v1", "configs"


@pytest.fixture
def config_name(custom):
    names = []

    def make(spec, name=None):
        name = name or f"cfg-{len(names)}"
        names.append(name)
        return custom.create_cluster_custom_object(G, V, P, {
            "apiVersion": f"{G}/{V}", "kind": "Config", "metadata": {"name": name}, "spec": spec})
    yield make
    for n in names:
        try:
            custom.delete_cluster_custom_object(G, V, P, n)
        except ApiException:
            pass


def _invalid(custom, spec, name="cluster"):
    with pytest.raises(ApiException) as e:
        custom.create_cluster_custom_object(G, V, P, {"apiVersion": f"{G}/{V}", "kind": "Config",
                                                      "metadata": {"name": name}, "spec": spec})
    assert e.value.status == 422
    st = status_of(e.value)
    assert st["reason"] == "Invalid" and st["details"]["kind"] == "Config" and st["details"]["group"] == G
    return st


def test_minimal_config_gets_defaults(config_name):
    obj = config_name({"replicas": 1})
    assert obj["spec"]["logLevel"] == "Normal" and obj["spec"]["operatorLogLevel"] == "Normal"
    assert obj["metadata"]["generation"] == 1


def test_negative_replicas_admitted(config_name):
    assert config_name({"replicas": -1})["spec"]["replicas"] == -1


def test_spec_and_replicas_required(custom):
    st = _invalid(custom, {"managementState": "Managed"})
    assert st["message"] == 'Config.imageregistry.operator.openshift.io "cluster" is invalid: spec.replicas: ' \
                            'Required value'
    with pytest.raises(ApiException) as e:
        custom.create_cluster_custom_object(G, V, P, {"apiVersion": f"{G}/{V}", "kind": "Config",
                                                      "metadata": {"name": "nospec"}})
    assert status_of(e.value)["message"].endswith('"nospec" is invalid: spec: Required value')


def test_management_state_pattern(custom):
    st = _invalid(custom, {"replicas": 1, "managementState": "Bogus"})
    assert st["message"] == (
        'Config.imageregistry.operator.openshift.io "cluster" is invalid: spec.managementState: Invalid value: '
        '"Bogus": spec.managementState in body should match \'^(Managed|Unmanaged|Force|Removed)$\'')
    assert st["details"]["causes"] == [{
        "reason": "FieldValueInvalid", "field": "spec.managementState",
        "message": 'Invalid value: "Bogus": spec.managementState in body should match '
                   '\'^(Managed|Unmanaged|Force|Removed)$\''}]


def test_log_level_enum_on_patch(custom, config_name):
    config_name({"replicas": 1}, name="loglevel")
    with pytest.raises(ApiException) as e:
        custom.patch_cluster_custom_object(G, V, P, "loglevel", {"spec": {"logLevel": "abc"}})
    assert e.value.status == 422
    assert status_of(e.value)["message"].endswith(
        'spec.logLevel: Unsupported value: "abc": supported values: "", "Normal", "Debug", "Trace", "TraceAll"')
    out = custom.patch_cluster_custom_object(G, V, P, "loglevel", {"spec": {"logLevel": "Debug"}})
    assert out["spec"]["logLevel"] == "Debug" and out["metadata"]["generation"] == 2


def test_rollout_strategy_storage_state_trusted_ca(custom):
    st = _invalid(custom, {"replicas": 1, "rolloutStrategy": "Bad"})
    assert "spec.rolloutStrategy in body should match '^(RollingUpdate|Recreate)$'" in st["message"]
    st = _invalid(custom, {"replicas": 1, "storage": {"managementState": "Removed"}})
    assert "spec.storage.managementState: Invalid value: \"Removed\": spec.storage.managementState in body " \
           "should match '^(Managed|Unmanaged)$'" in st["message"]
    st = _invalid(custom, {"replicas": 1, "storage": {"s3": {"trustedCA": {"name": "Bad_CA"}}}})
    assert st["details"]["causes"][0]["field"] == "spec.storage.s3.trustedCA.name"
    st = _invalid(custom, {"replicas": 1, "storage": {"s3": {"trustedCA": {"name": "a" * 254}}}})
    assert "spec.storage.s3.trustedCA.name: Too long" in st["message"]


def test_chunk_size_bounds_and_type(custom, config_name):
    st = _invalid(custom, {"replicas": 1, "storage": {"s3": {"chunkSizeMiB": 2}}})
    assert st["message"].endswith("spec.storage.s3.chunkSizeMiB: Invalid value: 2: spec.storage.s3.chunkSizeMiB "
                                  "in body should be greater than or equal to 5")
    st = _invalid(custom, {"replicas": 1, "storage": {"s3": {"chunkSizeMiB": 6000}}})
    assert st["message"].endswith("should be less than or equal to 5120")
    st = _invalid(custom, {"replicas": 1, "storage": {"s3": {"chunkSizeMiB": 5.5}}})
    assert st["message"].endswith('spec.storage.s3.chunkSizeMiB: Invalid value: "number": '
                                  'spec.storage.s3.chunkSizeMiB in body must be of type integer: "number"')
    assert config_name({"replicas": 1, "storage": {"s3": {"chunkSizeMiB": 5}}})["spec"]["storage"]["s3"][
        "chunkSizeMiB"] == 5


def test_replicas_int32(custom):
    st = _invalid(custom, {"replicas": "two"})
    assert 'spec.replicas in body must be of type integer: "string"' in st["message"]
    st = _invalid(custom, {"replicas": 2**31})
    assert "spec.replicas" in st["message"]


def test_several_errors_in_brackets(custom):
    st = _invalid(custom, {"replicas": 1, "managementState": "X", "rolloutStrategy": "Y"})
    assert ' is invalid: [spec.managementState: Invalid value: "X"' in st["message"]
    assert st["message"].endswith("]") and len(st["details"]["causes"]) == 2


def test_azure_container_pattern_optional(custom, config_name):
    assert config_name({"replicas": 1, "storage": {"azure": {}}})
    st = _invalid(custom, {"replicas": 1, "storage": {"azure": {"container": "Bad--name"}}})
    assert "spec.storage.azure.container" in st["message"]


def test_unknown_fields_pruned(config_name):
    obj = config_name({"replicas": 1, "bogusField": 1, "storage": {"emptyDir": {}, "nope": {}}})
    assert "bogusField" not in obj["spec"] and obj["spec"]["storage"] == {"emptyDir": {}}


def test_status_subresource_of_config(custom, config_name):
    config_name({"replicas": 1}, name="statuscfg")
    out = custom.patch_cluster_custom_object_status(G, V, P, "statuscfg", {"status": {"readyReplicas": 1},
                                                                          "spec": {"replicas": 3}})
    assert out["status"]["readyReplicas"] == 1 and out["spec"]["replicas"] == 1
    out = custom.patch_cluster_custom_object(G, V, P, "statuscfg", {"status": {"readyReplicas": 5}})
    assert out["status"]["readyReplicas"] == 1
