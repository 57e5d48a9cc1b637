"""Discovery, CRUD, patches, resourceVersion/generation, status and scale subresources, selectors."""
from __future__ import annotations

import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from localcluster.apiserver.resources import RESOURCES

from .helpers import raw, status_of


def _pod(name, image="registry.k8s.io/pause:3.9", **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": image}], **spec}}


def _deployment(name, replicas=1):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "pause"}]}}}}


def test_version(admin):
    v = k8s.VersionApi(admin).get_code()
    assert v.major == "1" and v.minor == "31" and v.git_version.startswith("v1.31.")


def test_discovery_core_and_groups(admin):
    core_list = k8s.CoreV1Api(admin).get_api_resources()
    by_name = {r.name: r for r in core_list.resources}
    assert by_name["pods"].kind == "Pod" and by_name["pods"].namespaced
    assert "po" in by_name["pods"].short_names
    assert set(by_name["pods"].verbs) >= {"create", "get", "list", "watch", "patch", "update", "delete"}
    assert by_name["pods/status"].kind == "Pod"
    assert by_name["namespaces"].namespaced is False
    groups = {g.name for g in k8s.ApisApi(admin).get_api_versions().groups}
    assert {"apps", "imageregistry.operator.openshift.io", "config.openshift.io", "route.openshift.io",
            "objectbucket.io", "authorization.k8s.io", "policy", "storage.k8s.io"} <= groups
    apps_list = k8s.AppsV1Api(admin).get_api_resources()
    scale = {r.name: r for r in apps_list.resources}["deployments/scale"]
    assert (scale.group, scale.version, scale.kind) == ("autoscaling", "v1", "Scale")


def test_dynamic_client_finds_every_resource(dyn):
    for rt in RESOURCES:
        res = dyn.resources.get(api_version=rt.api_version, kind=rt.kind)
        assert res.name == rt.plural and res.namespaced == rt.namespaced
        for sub in rt.subresources:
            assert sub in res.subresources
    cfg = dyn.resources.get(api_version="imageregistry.operator.openshift.io/v1", kind="Config")
    assert cfg.subresources["status"]


def test_create_get_list_replace_delete(core, ns):
    cm = core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}, "data": {"k": "v"}})
    assert cm.metadata.namespace == ns and cm.metadata.uid and cm.metadata.creation_timestamp
    assert cm.kind == "ConfigMap" and cm.api_version == "v1"
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}})
    assert e.value.status == 409
    assert status_of(e.value)["reason"] == "AlreadyExists"
    assert status_of(e.value)["message"] == 'configmaps "a" already exists'
    got = core.read_namespaced_config_map("a", ns)
    assert got.data == {"k": "v"}
    lst = core.list_namespaced_config_map(ns)
    assert lst.kind == "ConfigMapList" and int(lst.metadata.resource_version) >= int(cm.metadata.resource_version)
    assert [i.metadata.name for i in lst.items] == ["a"]
    got.data = {"k": "w"}
    rep = core.replace_namespaced_config_map("a", ns, got)
    assert rep.data == {"k": "w"} and int(rep.metadata.resource_version) > int(cm.metadata.resource_version)
    core.delete_namespaced_config_map("a", ns)
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("a", ns)
    assert e.value.status == 404


def test_not_found_message(custom):
    with pytest.raises(ApiException) as e:
        custom.get_cluster_custom_object("imageregistry.operator.openshift.io", "v1", "configs", "nope")
    assert e.value.status == 404
    import json
    body = json.loads(e.value.body)
    assert body["kind"] == "Status" and body["reason"] == "NotFound" and body["code"] == 404
    assert body["message"] == 'configs.imageregistry.operator.openshift.io "nope" not found'
    assert body["details"] == {"name": "nope", "group": "imageregistry.operator.openshift.io", "kind": "configs"}


def test_missing_namespace_is_404(core):
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("no-such-ns", {"metadata": {"name": "a"}})
    assert e.value.status == 404
    assert status_of(e.value)["message"] == 'namespaces "no-such-ns" not found'


def test_generate_name(core, ns):
    cm = core.create_namespaced_config_map(ns, {"metadata": {"generateName": "gen-"}})
    assert cm.metadata.name.startswith("gen-") and len(cm.metadata.name) == 9


def test_invalid_name_422(core, ns):
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "Bad_Name"}})
    assert e.value.status == 422
    st = status_of(e.value)
    assert st["reason"] == "Invalid"
    assert st["message"].startswith('ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": '
                                    'a lowercase RFC 1123 subdomain')
    assert st["details"]["causes"][0]["field"] == "metadata.name"


def test_stale_resource_version_conflicts(core, ns):
    cm = core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}, "data": {"a": "1"}})
    core.patch_namespaced_config_map("c", ns, {"data": {"a": "2"}})
    cm.data = {"a": "3"}
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_config_map("c", ns, cm)
    assert e.value.status == 409 and status_of(e.value)["reason"] == "Conflict"
    assert status_of(e.value)["message"].startswith(
        'Operation cannot be fulfilled on configmaps "c": the object has been modified')
    with pytest.raises(ApiException) as e:
        core.patch_namespaced_config_map("c", ns, {"metadata": {"resourceVersion": cm.metadata.resource_version},
                                                   "data": {"a": "4"}})
    assert e.value.status == 409
    assert core.read_namespaced_config_map("c", ns).data == {"a": "2"}


def test_json_patch_and_merge_patch_null(admin, core, ns):
    core.create_namespaced_config_map(ns, {"metadata": {"name": "j", "labels": {"a": "1", "b": "2"}},
                                           "data": {"x": "1"}})
    out = core.patch_namespaced_config_map("j", ns, {"metadata": {"labels": {"a": None}}})
    assert out.metadata.labels == {"b": "2"}
    api = admin
    # JSON patch through the generic call path with the json-patch content type.
    out = raw(api, "PATCH", f"/api/v1/namespaces/{ns}/configmaps/j",
              [{"op": "add", "path": "/data/y", "value": "2"}, {"op": "remove", "path": "/data/x"}],
              "application/json-patch+json")
    assert out["data"] == {"y": "2"}
    with pytest.raises(ApiException) as e:
        raw(api, "PATCH", f"/api/v1/namespaces/{ns}/configmaps/j",
            [{"op": "test", "path": "/data/y", "value": "nope"}], "application/json-patch+json")
    assert e.value.status == 422


def test_generation_and_status_isolation(apps, ns):
    d = apps.create_namespaced_deployment(ns, _deployment("web"))
    assert d.metadata.generation == 1 and d.spec.strategy.type == "RollingUpdate"
    # a metadata-only change keeps the generation
    d = apps.patch_namespaced_deployment("web", ns, {"metadata": {"labels": {"x": "y"}}})
    assert d.metadata.generation == 1
    # status through the main resource is ignored
    d = apps.patch_namespaced_deployment("web", ns, {"status": {"replicas": 5}, "spec": {"replicas": 2}})
    assert d.metadata.generation == 2 and not (d.status and d.status.replicas)
    # status subresource changes only status
    s = apps.patch_namespaced_deployment_status("web", ns, {"status": {"replicas": 2, "observedGeneration": 2},
                                                            "spec": {"replicas": 9}})
    assert s.status.replicas == 2 and s.spec.replicas == 2 and s.metadata.generation == 2
    s.status.ready_replicas = 1
    s = apps.replace_namespaced_deployment_status("web", ns, s)
    assert s.status.ready_replicas == 1
    full = apps.read_namespaced_deployment("web", ns)
    full.status.replicas = 77
    full.spec.replicas = 3
    full = apps.replace_namespaced_deployment("web", ns, full)
    assert full.status.replicas == 2 and full.spec.replicas == 3 and full.metadata.generation == 3


def test_status_dropped_on_create(core, ns):
    p = core.create_namespaced_pod(ns, {**_pod("p"), "status": {"phase": "Running"}})
    assert p.status.phase == "Pending"


def test_scale_subresource(apps, ns):
    apps.create_namespaced_deployment(ns, _deployment("sc", 1))
    s = apps.read_namespaced_deployment_scale("sc", ns)
    assert s.spec.replicas == 1 and s.status.selector == "app=sc"
    s = apps.patch_namespaced_deployment_scale("sc", ns, {"spec": {"replicas": 4}})
    assert s.spec.replicas == 4
    assert apps.read_namespaced_deployment("sc", ns).spec.replicas == 4


def test_strategic_merge_containers_env(core, ns):
    core.create_namespaced_pod(ns, {"metadata": {"name": "smp"}, "spec": {"containers": [
        {"name": "a", "image": "img-a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
         "volumeMounts": [{"name": "v", "mountPath": "/v"}]},
        {"name": "b", "image": "img-b"}]}})
    p = core.patch_namespaced_pod("smp", ns, {"spec": {"containers": [
        {"name": "a", "image": "img-a2", "env": [{"name": "Y", "value": "3"}, {"name": "Z", "value": "4"}]}]}})
    by = {c.name: c for c in p.spec.containers}
    assert set(by) == {"a", "b"} and by["a"].image == "img-a2" and by["b"].image == "img-b"
    assert {e.name: e.value for e in by["a"].env} == {"X": "1", "Y": "3", "Z": "4"}
    assert [m.mount_path for m in by["a"].volume_mounts] == ["/v"]
    p = core.patch_namespaced_pod("smp", ns, {"spec": {"containers": [
        {"name": "a", "env": [{"name": "X", "$patch": "delete"}]}, {"name": "b", "$patch": "delete"}]}})
    assert [c.name for c in p.spec.containers] == ["a"]
    assert [e.name for e in p.spec.containers[0].env] == ["Y", "Z"]
    # a merge patch replaces the list as a whole
    p = raw(core.api_client, "PATCH", f"/api/v1/namespaces/{ns}/pods/smp",
            {"spec": {"containers": [{"name": "n", "image": "i"}]}}, "application/merge-patch+json")
    assert [c["name"] for c in p["spec"]["containers"]] == ["n"]


def test_strategic_merge_conditions_by_type(core, ns):
    core.create_namespaced_pod(ns, _pod("cond"))
    core.patch_namespaced_pod_status("cond", ns, {"status": {"conditions": [
        {"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]}})
    p = core.patch_namespaced_pod_status("cond", ns, {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    assert {c.type: c.status for c in p.status.conditions} == {"Ready": "True", "PodScheduled": "True"}


def test_strategic_merge_rejected_for_custom_resources(admin, custom):
    body = {"apiVersion": "config.openshift.io/v1", "kind": "Proxy", "metadata": {"name": "smp-proxy"},
            "spec": {}}
    custom.create_cluster_custom_object("config.openshift.io", "v1", "proxies", body)
    try:
        with pytest.raises(ApiException) as e:
            raw(admin, "PATCH", "/apis/config.openshift.io/v1/proxies/smp-proxy", {"spec": {"a": 1}},
                "application/strategic-merge-patch+json")
        assert e.value.status == 415
        # CustomObjectsApi sends merge patches
        out = custom.patch_cluster_custom_object("config.openshift.io", "v1", "proxies", "smp-proxy",
                                                 {"spec": {"httpProxy": "http://p"}})
        assert out["spec"]["httpProxy"] == "http://p" and out["kind"] == "Proxy"
    finally:
        custom.delete_cluster_custom_object("config.openshift.io", "v1", "proxies", "smp-proxy")


def test_label_selectors(core, ns):
    for name, labels in [("l1", {"app": "a", "tier": "web"}), ("l2", {"app": "b", "tier": "db"}),
                         ("l3", {"app": "c"})]:
        core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": labels}})

    def names(sel):
        return sorted(i.metadata.name for i in core.list_namespaced_config_map(ns, label_selector=sel).items)
    assert names("app=a") == ["l1"]
    assert names("app==b") == ["l2"]
    assert names("app!=a") == ["l2", "l3"]
    assert names("app in (a, c)") == ["l1", "l3"]
    assert names("app notin (a,c)") == ["l2"]
    assert names("tier") == ["l1", "l2"]
    assert names("!tier") == ["l3"]
    assert names("tier,app!=b") == ["l1"]
    with pytest.raises(ApiException) as e:
        core.list_namespaced_config_map(ns, label_selector="app in a")
    assert e.value.status == 400


def test_field_selectors(core, ns):
    core.create_namespaced_pod(ns, _pod("f1", nodeName="worker-0"))
    core.create_namespaced_pod(ns, _pod("f2"))
    core.patch_namespaced_pod_status("f1", ns, {"status": {"phase": "Running"}})

    def names(sel, all_ns=False):
        if all_ns:
            items = core.list_pod_for_all_namespaces(field_selector=sel).items
        else:
            items = core.list_namespaced_pod(ns, field_selector=sel).items
        return sorted(i.metadata.name for i in items)
    assert names("spec.nodeName=worker-0") == ["f1"]
    assert names("spec.nodeName=") == ["f2"]
    assert names("status.phase=Running") == ["f1"]
    assert names("status.phase!=Running") == ["f2"]
    assert names("metadata.name=f2") == ["f2"]
    assert names(f"metadata.namespace={ns},metadata.name=f1", all_ns=True) == ["f1"]
    ev = {"metadata": {"name": "f1.abc"}, "involvedObject": {"kind": "Pod", "name": "f1", "namespace": ns,
                                                               "uid": "u-1"},
          "reason": "FailedScheduling", "message": "m", "type": "Warning"}
    core.create_namespaced_event(ns, ev)
    evs = core.list_namespaced_event(ns, field_selector="involvedObject.name=f1,involvedObject.kind=Pod")
    assert [e.reason for e in evs.items] == ["FailedScheduling"]
    assert core.list_namespaced_event(ns, field_selector="involvedObject.uid=u-2").items == []
    with pytest.raises(ApiException) as e:
        core.list_namespaced_pod(ns, field_selector="spec.bogus=1")
    assert e.value.status == 400


def test_list_pagination(core, ns):
    for i in range(5):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"p{i}"}})
    first = core.list_namespaced_config_map(ns, limit=2)
    assert [i.metadata.name for i in first.items] == ["p0", "p1"] and first.metadata._continue
    rest = core.list_namespaced_config_map(ns, limit=10, _continue=first.metadata._continue)
    assert [i.metadata.name for i in rest.items] == ["p2", "p3", "p4"] and not rest.metadata._continue


def test_dynamic_client_crud(dyn, ns):
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    cms.create(body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d1"}, "data": {"a": "b"}},
               namespace=ns)
    lst = cms.get(namespace=ns)
    assert lst.kind == "ConfigMapList" and [i.metadata.name for i in lst.items] == ["d1"]
    cms.patch(name="d1", namespace=ns, body={"data": {"c": "d"}}, content_type="application/merge-patch+json")
    assert dict(cms.get(name="d1", namespace=ns).data) == {"a": "b", "c": "d"}
    cms.delete(name="d1", namespace=ns)
    assert cms.get(namespace=ns).items == []
