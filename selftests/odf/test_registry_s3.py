"""The docs procedure for Ceph RGW (operator-facts.md §5.6) on the local cluster: the real registry
stores images in the real S3 server through the router, trusting the ingress CA it is given; the fault
knobs `router.untrustedS3Cert`, `s3.dropWrites` and `obc.wrongKeys`."""
import base64
import glob
import time

import botocore
import pytest

from selftests.kubelet.kubelet_oci import Registry, RegistryError
from selftests.odf.conftest import wait_for

IR = "openshift-image-registry"
CFG = ("imageregistry.operator.openshift.io", "v1", "configs", "cluster")
RGW_ROUTE = "ocs-storagecluster-cephobjectstore"


def _config(odf):
    g, v, p, n = CFG
    return odf.co.get_cluster_custom_object(g, v, p, n)


def _cond(cfg, t):
    return next((c for c in cfg.get("status", {}).get("conditions") or [] if c["type"] == t), {})


def _patch_config(odf, body):
    g, v, p, n = CFG
    odf.co.patch_cluster_custom_object(g, v, p, n, body)


@pytest.fixture(scope="module")
def rgw_registry(odf):
    """OBC rgwbucket + user secret + trustedCA configmap + the documented patch, registry Available."""
    import kubernetes
    odf.create_obc("rgwbucket", "ocs-storagecluster-ceph-rgw")
    obc = odf.wait_bound("rgwbucket")
    bucket = obc["spec"]["bucketName"]
    key, secret = odf.obc_keys("rgwbucket")
    odf.core.create_namespaced_secret(IR, kubernetes.client.V1Secret(
        metadata=kubernetes.client.V1ObjectMeta(name="image-registry-private-configuration-user"),
        # `data`, not stringData: the local API server does not convert stringData (yet).
        data={"REGISTRY_STORAGE_S3_ACCESSKEY": base64.b64encode(key.encode()).decode(),
              "REGISTRY_STORAGE_S3_SECRETKEY": base64.b64encode(secret.encode()).decode()}))
    odf.core.create_namespaced_config_map("openshift-config", kubernetes.client.V1ConfigMap(
        metadata=kubernetes.client.V1ObjectMeta(name="image-registry-s3-bundle"),
        data={"ca-bundle.crt": odf.ingress_bundle.decode()}))
    host = odf.route_host(RGW_ROUTE)
    _patch_config(odf, {"spec": {"managementState": "Managed", "replicas": 2, "defaultRoute": True, "storage": {
        "managementState": "Unmanaged", "s3": {
            "bucket": bucket, "region": "us-east-1", "regionEndpoint": f"https://{host}",
            "virtualHostedStyle": False, "encrypt": False, "trustedCA": {"name": "image-registry-s3-bundle"}}}}})
    wait_for(lambda: _cond(_config(odf), "Available").get("reason") == "Ready" and
             _cond(_config(odf), "Progressing").get("status") == "False", timeout=40, what="registry Ready")
    s3 = odf.s3(RGW_ROUTE, key, secret)
    route = odf.co.get_namespaced_custom_object("route.openshift.io", "v1", IR, "routes", "default-route")
    reg = Registry(f"https://{route['spec']['host']}", password=odf.token, resolve=odf.info["ingress_address"])
    return {"bucket": bucket, "s3": s3, "registry": reg, "key": key, "secret": secret}


def test_operator_configures_registry_for_s3(odf, rgw_registry):
    cfg = _config(odf)
    se = _cond(cfg, "StorageExists")
    assert (se["status"], se["reason"]) == ("True", "S3 Bucket Exists")
    assert cfg["spec"]["storage"]["managementState"] == "Unmanaged"
    assert cfg["status"]["storage"]["s3"]["bucket"] == rgw_registry["bucket"]
    dep = odf.apps.read_namespaced_deployment("image-registry", IR)
    env = {e.name: e.value for e in dep.spec.template.spec.containers[0].env}
    host = odf.route_host(RGW_ROUTE)
    assert env["REGISTRY_STORAGE"] == "s3"
    assert env["REGISTRY_STORAGE_S3_BUCKET"] == rgw_registry["bucket"]
    assert env["REGISTRY_STORAGE_S3_REGIONENDPOINT"] == f"https://{host}"
    assert env["REGISTRY_STORAGE_S3_CREDENTIALSCONFIGPATH"] == "/var/run/secrets/cloud/credentials"
    assert env["REGISTRY_STORAGE_S3_FORCEPATHSTYLE"] == "true"
    assert env["REGISTRY_STORAGE_S3_USEDUALSTACK"] == "true"
    assert env["REGISTRY_STORAGE_S3_ENCRYPT"] == "false"
    assert "REGISTRY_STORAGE_S3_ACCESSKEY" not in env
    private = odf.core.read_namespaced_secret("image-registry-private-configuration", IR).data
    assert base64.b64decode(private["credentials"]).decode() == (
        f"[default]\naws_access_key_id = {rgw_registry['key']}\n"
        f"aws_secret_access_key = {rgw_registry['secret']}\n")
    certs = odf.core.read_namespaced_config_map("image-registry-certificates", IR).data
    assert certs["storage-ca-bundle.pem"] == odf.ingress_bundle.decode()


def test_push_pull_through_default_route_lands_in_bucket(odf, rgw_registry):
    reg = rgw_registry["registry"]
    digest = reg.push_image("openshift/odf-test", "v1", layer=b"stored in ceph rgw\n")
    pulled = reg.pull_image("openshift/odf-test", "v1")
    assert pulled is not None
    keys = [o["Key"] for o in rgw_registry["s3"].list_objects_v2(
        Bucket=rgw_registry["bucket"], Prefix="docker/registry/v2/").get("Contents") or []]
    assert any(k.startswith("docker/registry/v2/blobs/sha256/") for k in keys), keys
    assert any("repositories/openshift/odf-test/_manifests" in k for k in keys), keys
    assert any(digest.split(":")[1] in k for k in keys), (digest, keys)


def _registry_logs(odf) -> str:
    out = ""
    for f in glob.glob(f"{odf.info['state_dir']}/pods/**/registry.log", recursive=True):
        out += open(f, errors="replace").read()
    return out


def test_untrusted_s3_certificate_gives_x509_errors(odf, rgw_registry):
    reg = rgw_registry["registry"]
    odf.set_fault("router.untrustedS3Cert", "true")
    try:
        # Our own client, trusting the ingress CA, now fails verification.
        def ssl_fails():
            try:
                odf.s3(RGW_ROUTE, rgw_registry["key"], rgw_registry["secret"]).list_objects_v2(
                    Bucket=rgw_registry["bucket"])
            except botocore.exceptions.SSLError as e:
                return "certificate verify failed" in str(e)
            return False
        wait_for(ssl_fails, timeout=10, what="an SSL verification failure")
        # The real registry fails too (HTTP 5xx), with x509 errors in its log.
        with pytest.raises(RegistryError) as e:
            reg.push_image("openshift/odf-untrusted", "v1", layer=b"never stored\n")
        assert e.value.status >= 500
        assert "x509: certificate signed by unknown authority" in _registry_logs(odf)
        # The operator's own S3 client: Progressing carries the TLS failure.
        _patch_config(odf, {"metadata": {"annotations": {"selftest/poke": str(time.time())}}})
        prog = wait_for(lambda: (c := _cond(_config(odf), "Progressing")).get("status") == "True" and c,
                        timeout=20, what="Progressing=True")
        assert prog["message"].startswith("Unable to apply resources: unable to sync storage configuration: "
                                          "RequestError: send request failed")
        assert "x509: certificate signed by unknown authority" in prog["message"]
    finally:
        odf.set_fault("router.untrustedS3Cert", None)
    wait_for(lambda: reg.push_image("openshift/odf-untrusted", "v2", layer=b"stored again\n"), timeout=20,
             what="push after the fault")


def test_drop_writes_makes_objects_vanish(odf, rgw_registry):
    s3, bucket = rgw_registry["s3"], rgw_registry["bucket"]
    s3.put_object(Bucket=bucket, Key="kept", Body=b"1")
    time.sleep(1.6)   # the knob drops objects written from (about) when it is seen, in whole seconds
    odf.set_fault("s3.dropWrites", "true")
    try:
        s3.put_object(Bucket=bucket, Key="dropped", Body=b"2")
        wait_for(lambda: "dropped" not in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents") or []],
                 timeout=10, what="the new object to vanish")
        assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"1"
    finally:
        odf.set_fault("s3.dropWrites", None)
    time.sleep(1.0)
    s3.put_object(Bucket=bucket, Key="after", Body=b"3")
    time.sleep(1.0)
    assert s3.get_object(Bucket=bucket, Key="after")["Body"].read() == b"3"


def test_wrong_keys_fault_gives_rejected_secret(odf):
    odf.set_fault("obc.wrongKeys", "true")
    try:
        odf.create_obc("wrongkeys", "openshift-storage.noobaa.io")
        obc = odf.wait_bound("wrongkeys")
    finally:
        odf.set_fault("obc.wrongKeys", None)
    key, secret = odf.obc_keys("wrongkeys")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        odf.s3("s3", key, secret).list_objects_v2(Bucket=obc["spec"]["bucketName"])
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    odf.delete_obc("wrongkeys")


# --------------------------------------------------------------------------- storage redirects (facts §12.3)
def _suite_cluster(odf):
    from utilities.kube import load_cluster
    return load_cluster(odf.proc.kubeconfig, ingress_address=odf.info["ingress_address"], info=odf.info)


def test_s3_blob_pulls_redirect_to_the_s3_route_and_the_suite_follows(odf, rgw_registry, tmp_path):
    """Redirects are on (no disableRedirect, as the operator configures the registry): a blob GET answers
    307 with a presigned URL on the S3 route; the suite's route client and its per-replica client
    (port-forward, service CA) follow it trusting the S3 endpoint's CA, through the connect-to mapping
    (the S3 route host does not resolve), and the S3 server serves the presigned GET through the route."""
    from urllib.parse import urlsplit

    from utilities import registry_steps as steps
    from utilities.images import build_random_image
    from utilities.registry_client import RegistryClient, RegistryError

    cluster = _suite_cluster(odf)
    env = {e.name: e.value for e in odf.apps.read_namespaced_deployment("image-registry", IR)
           .spec.template.spec.containers[0].env}
    assert "REGISTRY_STORAGE_REDIRECT_DISABLE" not in env
    route_host = odf.co.get_namespaced_custom_object("route.openshift.io", "v1", IR, "routes",
                                                     "default-route")["spec"]["host"]
    image = build_random_image(layer_size=300_000, layers=2)
    repo = "openshift/redirected"
    with steps.registry_client(cluster, route_host) as client:
        digest = client.push_image(repo, "v1", image)
        raw = client._request("GET", f"/v2/{repo}/blobs/{image.layers[0].digest}", repo, stream=True)
        raw.close()
        assert raw.status_code == 307, f"blob GET answered {raw.status_code}, not a storage redirect"
        target = urlsplit(raw.headers["Location"])
        assert target.hostname == odf.route_host(RGW_ROUTE) and "X-Amz-Signature=" in target.query
        # The S3 server checks the presigned signature: a changed one is refused.
        import requests
        from utilities.registry_client import RouteAdapter
        with requests.Session() as s:
            s.trust_env = False
            s.mount(f"https://{target.hostname}", RouteAdapter(target.hostname, odf.info["ingress_address"]))
            sig = target.query.split("X-Amz-Signature=")[1][:64]
            bad = raw.headers["Location"].replace(sig, ("0" if sig[0] != "0" else "1") + sig[1:])
            refused = s.get(bad, verify=str(odf.ca_file), timeout=20)
            assert refused.status_code == 403 and b"SignatureDoesNotMatch" in refused.content, refused.text[:300]
            assert s.get(raw.headers["Location"], verify=str(odf.ca_file), timeout=20).status_code == 200
        pulled = client.pull_image(repo, "v1", expected_digest=digest)
        client.verify_same(pulled, image)
        assert client.redirects_followed == len(image.blobs)

    service_ca = steps.service_ca_file(cluster)
    pods = steps.ready_registry_pods(cluster)
    assert pods
    for pod in pods:
        with steps.replica_client(cluster, pod.metadata.name, service_ca) as client:
            client.verify_same(client.pull_image(repo, "v1", expected_digest=digest), image)
            assert client.redirects_followed == len(image.blobs)

    # What the follow needs: the S3 endpoint's CA (not the registry's), and the connect-to mapping.
    with RegistryClient(route_host, ca_file=cluster.router_ca_file, token=cluster.token,
                        connect_to=odf.info["ingress_address"], redirect_verify=service_ca,
                        connect_to_for=steps.redirect_connect_to(cluster)) as wrong_ca:
        with pytest.raises(RegistryError, match="storage redirect.*TLS verification failed"):
            wrong_ca.pull_image(repo, "v1")
    with RegistryClient(route_host, ca_file=cluster.router_ca_file, token=cluster.token,
                        connect_to=odf.info["ingress_address"]) as unmapped:
        with pytest.raises(RegistryError, match="storage redirect.*could not be reached"):
            unmapped.pull_image(repo, "v1")


def test_disable_redirect_serves_blobs_through_the_registry(odf, rgw_registry):
    """spec.disableRedirect: true -> the operator sets REGISTRY_STORAGE_REDIRECT_DISABLE=true and blob
    GETs are answered 200 by the registry itself (no 307); back to false -> redirects again."""
    from utilities import registry_steps as steps
    from utilities.images import build_random_image

    cluster = _suite_cluster(odf)
    route_host = odf.co.get_namespaced_custom_object("route.openshift.io", "v1", IR, "routes",
                                                     "default-route")["spec"]["host"]
    image = build_random_image(layer_size=100_000)
    repo = "openshift/not-redirected"

    def blob_status(client):
        r = client._request("GET", f"/v2/{repo}/blobs/{image.layers[0].digest}", repo, stream=True)
        r.close()
        return r.status_code

    def rolled_out_with(disable: bool):
        dep = odf.apps.read_namespaced_deployment("image-registry", IR)
        env = {e.name: e.value for e in dep.spec.template.spec.containers[0].env}
        pods = odf.core.list_namespaced_pod(IR, label_selector="docker-registry=default").items
        fresh = [p for p in pods if not p.metadata.deletion_timestamp and any(
            c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]
        return (env.get("REGISTRY_STORAGE_REDIRECT_DISABLE") == ("true" if disable else None)
                and (dep.status.updated_replicas or 0) == (dep.status.ready_replicas or 0) == len(fresh)
                == dep.spec.replicas and (dep.status.observed_generation or 0) >= dep.metadata.generation)

    with steps.registry_client(cluster, route_host) as client:
        client.push_image(repo, "v1", image)
        _patch_config(odf, {"spec": {"disableRedirect": True}})
        try:
            wait_for(lambda: rolled_out_with(True), timeout=60, what="a rollout with redirects disabled")
            wait_for(lambda: blob_status(client) == 200, timeout=20, what="blob GET answered 200")
            client.verify_same(client.pull_image(repo, "v1"), image)
        finally:
            _patch_config(odf, {"spec": {"disableRedirect": False}})
        wait_for(lambda: rolled_out_with(False), timeout=60, what="a rollout with redirects on again")
        wait_for(lambda: blob_status(client) == 307, timeout=20, what="blob GET answered 307 again")
