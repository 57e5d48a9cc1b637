"""Pure parts of the operator's S3 driver and of the network proxy's name resolution."""
import botocore.exceptions
import pytest

from localcluster.controllers.registry_operator import s3 as D
from localcluster.controllers.registry_operator.storage import DRIVERS, new_driver
from localcluster.netproxy import NetProxy, Refused
from localcluster.settings import Settings


def test_s3_is_a_registered_driver():
    assert isinstance(new_driver({"s3": {}}), D.S3Driver)
    assert DRIVERS["s3"] is D.S3Driver


def test_env_for_an_odf_endpoint():
    env = {e["name"]: e["value"] for e in D.s3_env({
        "bucket": "b", "region": "us-east-1", "regionEndpoint": "https://rgw.example", "virtualHostedStyle": False,
        "encrypt": False, "chunkSizeMiB": 10})}
    assert env == {
        "REGISTRY_STORAGE": "s3", "REGISTRY_STORAGE_S3_BUCKET": "b", "REGISTRY_STORAGE_S3_REGION": "us-east-1",
        "REGISTRY_STORAGE_S3_REGIONENDPOINT": "https://rgw.example", "REGISTRY_STORAGE_S3_ENCRYPT": "false",
        "REGISTRY_STORAGE_S3_CREDENTIALSCONFIGPATH": "/var/run/secrets/cloud/credentials",
        "REGISTRY_STORAGE_S3_CHUNKSIZE": str(10 * 1024 * 1024), "REGISTRY_STORAGE_S3_USEDUALSTACK": "true",
        "REGISTRY_STORAGE_S3_FORCEPATHSTYLE": "true"}


def test_env_without_endpoint_and_virtual_hosted_style():
    env = {e["name"]: e["value"] for e in D.s3_env({"bucket": "b", "region": "eu-west-1",
                                                     "virtualHostedStyle": True, "chunkSizeMiB": 4})}
    assert "REGISTRY_STORAGE_S3_REGIONENDPOINT" not in env and "REGISTRY_STORAGE_S3_USEDUALSTACK" not in env
    assert "REGISTRY_STORAGE_S3_CHUNKSIZE" not in env
    assert env["REGISTRY_STORAGE_S3_FORCEPATHSTYLE"] == "false"


def test_messages_and_names():
    assert D.credentials_ini("AK", "SK") == "[default]\naws_access_key_id = AK\naws_secret_access_key = SK\n"
    assert D.missing_key_message("REGISTRY_STORAGE_S3_ACCESSKEY") == (
        'secret "openshift-image-registry/image-registry-private-configuration-user" does not contain '
        'required key "REGISTRY_STORAGE_S3_ACCESSKEY"')
    assert D.cluster_credentials_message('secret "installer-cloud-credentials" not found') == (
        'unable to get cluster minted credentials "openshift-image-registry/installer-cloud-credentials": '
        'secret "installer-cloud-credentials" not found')
    assert D.trusted_ca_not_found("x") == 'failed to get trusted CA "x": configmap "x" not found'
    assert D.deterministic_bucket_name("Infra-" + "x" * 80, "us-east-1") == ("infra-" + "x" * 80)[:62]


def test_aws_error_rendering():
    e = botocore.exceptions.ClientError({"Error": {"Code": "403", "Message": "Forbidden"},
                                         "ResponseMetadata": {"HTTPStatusCode": 403, "RequestId": "R"}}, "HeadBucket")
    err = D.aws_error(e, "Head", "https://h/b")
    assert err.code == "Forbidden"
    assert err.text == "Forbidden: Forbidden\n\tstatus code: 403, request id: R, host id: "
    ssl = botocore.exceptions.SSLError(endpoint_url="https://h/b", error="CERTIFICATE_VERIFY_FAILED")
    err = D.aws_error(ssl, "Head", "https://h/b")
    assert err.code == "RequestError"
    assert err.text == ('RequestError: send request failed\ncaused by: Head "https://h/b": '
                        'tls: failed to verify certificate: x509: certificate signed by unknown authority')


class _Inf:
    def __init__(self, objs):
        self.objs = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs}

    def get(self, ns, name):
        return self.objs.get((ns, name))

    def items(self):
        return list(self.objs.values())


def test_proxy_resolution():
    p = NetProxy(None, Settings(), router_address=lambda: "127.0.0.1:4443")
    p.services = _Inf([
        {"metadata": {"namespace": "ns", "name": "plain"}, "spec": {"ports": [{"name": "http", "port": 80}]}},
        {"metadata": {"namespace": "ns", "name": "sel"},
         "spec": {"selector": {"a": "b"}, "ports": [{"name": "https", "port": 443, "targetPort": 5000}]}}])
    p.endpoints = _Inf([{"metadata": {"namespace": "ns", "name": "plain"},
                         "subsets": [{"addresses": [{"ip": "127.0.0.9"}], "ports": [{"name": "http", "port": 9000}]}]}])
    p.pods = _Inf([{"metadata": {"namespace": "ns", "name": "p", "labels": {"a": "b"}},
                    "status": {"podIP": "127.1.0.5", "conditions": [{"type": "Ready", "status": "True"}]}}])
    assert p.resolve("x-y.apps.vsphere-local.example.test", 443) == ("127.0.0.1", 4443)
    assert p.resolve("plain.ns.svc", 80) == ("127.0.0.9", 9000)
    assert p.resolve("sel.ns.svc.cluster.local", 443) == ("127.1.0.5", 5000)
    for host, port, status in (("example.com", 443, 403), ("x.apps.vsphere-local.example.test", 80, 502),
                               ("nope.ns.svc", 80, 502), ("plain.ns.svc", 443, 502)):
        with pytest.raises(Refused) as e:
            p.resolve(host, port)
        assert e.value.status == status
