"""status.storage compared as the Go types write it (facts §12.2), and the S3 endpoint's scheme taken
from the route (facts §12.9): against the local cluster's own functions, which behave as the real ones."""
from __future__ import annotations

import pytest

from localcluster import odf
from localcluster.controllers.registry_operator.conditions import aggregate
from localcluster.controllers.registry_operator.storage import go_storage_member
from utilities.backends import CEPH_RGW, CEPHFS, DEFAULT_PVC, EMPTYDIR, without_zero_values
from utilities.junit import pytest_id
from utilities.routes import route_scheme, route_url


def _status_storage(asked: dict, state: str) -> dict:
    """status.storage the emulated operator writes for spec.storage `asked` (sync_storage's last step)."""
    (key,) = [k for k in asked if k != "managementState"]
    return {key: go_storage_member(key, asked[key]), "managementState": asked.get("managementState") or state}


def test_s3_status_storage_has_no_encrypt_false_and_still_equals_what_was_asked():
    asked = CEPH_RGW.storage_spec(bucket="b-1", endpoint="https://s3.example", trusted_ca="ca")
    status = _status_storage(asked, "Unmanaged")
    assert "encrypt" not in status["s3"], "the operator's Go struct drops encrypt: false (omitempty)"
    assert status["s3"]["virtualHostedStyle"] is False       # no omitempty: always written
    assert without_zero_values(status) == CEPH_RGW.expected_status_storage(asked)


def test_go_struct_writes_fields_without_omitempty():
    assert go_storage_member("s3", {"bucket": "b"}) == {"bucket": "b", "virtualHostedStyle": False,
                                                         "trustedCA": {"name": ""}}
    assert without_zero_values({"s3": {"bucket": "b", "virtualHostedStyle": False, "trustedCA": {"name": ""}}}) \
        == {"s3": {"bucket": "b"}}


@pytest.mark.parametrize("backend", [EMPTYDIR, DEFAULT_PVC, CEPHFS], ids=lambda b: b.id)
def test_other_backends_compare_unchanged(backend):
    asked = backend.storage_spec()
    got = _status_storage(backend.expected_status_storage(asked), backend.storage_management_state)
    assert without_zero_values(got) == backend.expected_status_storage(asked)
    assert without_zero_values({"emptyDir": {}}) == {"emptyDir": {}}


@pytest.mark.parametrize("version,scheme", [("4.12", "http"), ("4.13", "https"), ("4.18", "https")])
def test_rgw_route_scheme_by_odf_version(version, scheme):
    route = {"metadata": {"name": "ocs-storagecluster-cephobjectstore", "namespace": "openshift-storage"},
             "spec": {"host": "rgw.apps.example"}}
    tls = odf.route_tls(odf.RGW, version)
    if tls:
        route["spec"]["tls"] = tls
    assert route_scheme(route) == scheme
    assert route_url(route) == f"{scheme}://rgw.apps.example"
    assert route_scheme({"spec": {"tls": odf.route_tls(odf.NOOBAA, version)}}) == "https"


def test_route_without_host_is_a_clear_error():
    with pytest.raises(LookupError, match="route openshift-storage/s3 has no host yet"):
        route_url({"metadata": {"name": "s3", "namespace": "openshift-storage"}, "spec": {}})


def test_clusteroperator_reason_is_the_union_of_components():
    """CIRO unionReason: sorted `<prefix><reason>` of the matching conditions, AsExpected left out."""
    config = [{"type": "Degraded", "status": "True", "reason": "StorageNotConfigured", "message": "Error: x"},
              {"type": "NodeCADaemonControllerDegraded", "status": "False", "reason": "AsExpected"}]
    pruner = [{"type": "Degraded", "status": "True", "reason": "JobFailed", "message": "Job failed\nbackoff"}]
    c = aggregate("Degraded", config, pruner)
    assert (c["status"], c["reason"]) == ("True", "ImagePrunerJobFailed::StorageNotConfigured")
    assert c["message"].splitlines() == ["Degraded: Error: x", "ImagePrunerDegraded: Job failed",
                                         "ImagePrunerDegraded: backoff"]


# --- ODF 4.12 end to end: the RGW route is plain HTTP; the regionEndpoint must say http -----------------
@pytest.fixture(scope="module")
def odf412(tmp_path_factory):
    from utilities.kube import load_cluster
    from utilities.localcluster_process import LocalClusterProcess
    lc = LocalClusterProcess(tmp_path_factory.mktemp("odf412"), ["--odf-version", "4.12"])
    lc.start()
    try:
        c = load_cluster(lc.kubeconfig, embedded=True, info=lc.info)
        yield lc, c
        c.api_client.close()
    finally:
        lc.stop()


def test_odf_412_rgw_route_is_served_on_plain_http_only(odf412):
    import requests
    lc, cluster = odf412
    from utilities import kube
    route = kube.call(cluster.custom.get_namespaced_custom_object, *kube.ROUTE_GVR[:2], "openshift-storage",
                      kube.ROUTE_GVR[2], "ocs-storagecluster-cephobjectstore")
    assert "tls" not in route["spec"], route["spec"]
    host = route["spec"]["host"]
    plain = requests.get(f"http://{lc.info['ingress_http_address']}/", headers={"Host": host}, timeout=10)
    # the object store itself answered (moto behind the route), not the router's 503
    assert plain.status_code != 503 and "Werkzeug" in plain.headers.get("Server", ""), plain.text[:300]
    # the HTTPS frontend has no such route (HAProxy: 503 "Application is not available")
    secure = requests.get(f"https://{lc.info['ingress_address']}/", headers={"Host": host}, verify=False, timeout=10)
    assert secure.status_code == 503


def test_odf_412_rgw_backend_rolls_out_with_an_http_region_endpoint(odf412):
    from utilities import registry_steps as steps
    from utilities import waits
    from utilities.labels import labels
    _lc, cluster = odf412
    waits.wait_for_config_exists(cluster, 60)
    with steps.configure_backend(cluster, CEPH_RGW, 90, labels("selftest-odf412")) as setup:
        endpoint = setup.fields["storage"]["s3"]["regionEndpoint"]
        assert endpoint == f"http://{setup.s3_host}", endpoint
        snap = waits.read_snapshot(cluster)
        assert waits.RolloutJudge.complete(snap), waits.describe_snapshot(snap)


def test_odf_412_bucket_listing_over_the_plain_http_route(odf412, tmp_path):
    """The suite's own bucket check on ODF 4.12 (facts §12.9): the RGW route has no TLS, so the
    ListObjectsV2 goes over plain HTTP to the router's HTTP side (--ingress-http-address, which the
    serve command prints), not https (where the router answers 503 for that host)."""
    import shlex
    import subprocess
    import xml.etree.ElementTree as ET
    from utilities.localcluster_process import REPO_ROOT
    lc, _cluster = odf412
    lines = [ln for ln in lc.log_path.read_text().splitlines() if ln.startswith("suite: ")]
    assert lines, lc.log_path.read_text()[-2000:]
    command = lines[-1][len("suite: "):]
    assert f"--ingress-http-address={lc.info['ingress_http_address']}" in command, command
    junit = tmp_path / "junit.xml"
    extra = ["tests/test_storage_backends.py", "--backend", "ceph-rgw", "-k", "bucket",
             f"--reports-dir={tmp_path / 'r'}", f"--junitxml={junit}", "-p", "no:cacheprovider", "-q"]
    proc = subprocess.run(["bash", "-c", command + " " + " ".join(shlex.quote(a) for a in extra)], cwd=REPO_ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, out[-3000:]
    cases = {pytest_id(tc): tc for tc in ET.parse(junit).getroot().iter("testcase")}
    assert "test_blobs_are_in_the_bucket[ceph-rgw]" in cases, sorted(cases)
    tc = cases["test_blobs_are_in_the_bucket[ceph-rgw]"]
    assert not list(tc) or all(c.tag in ("properties", "system-out", "system-err") for c in tc), out[-3000:]
