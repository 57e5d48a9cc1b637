"""ObjectBucketClaims on the local ODF: real moto S3 servers that check signatures, behind the router."""
import botocore
import pytest

from selftests.odf.conftest import NS, wait_for


def _code(exc_info) -> str:
    return exc_info.value.response["Error"]["Code"]


def test_seeded_storage_classes_services_routes(odf):
    import kubernetes
    st = kubernetes.client.StorageV1Api(odf.api)
    classes = {c.metadata.name: c for c in st.list_storage_class().items}
    assert classes["ocs-storagecluster-cephfs"].provisioner == "openshift-storage.cephfs.csi.ceph.com"
    assert classes["ocs-storagecluster-ceph-rbd"].provisioner == "openshift-storage.rbd.csi.ceph.com"
    assert classes["ocs-storagecluster-ceph-rgw"].provisioner == "openshift-storage.ceph.rook.io/bucket"
    assert classes["ocs-storagecluster-ceph-rgw"].parameters["objectStoreNamespace"] == NS
    assert classes["openshift-storage.noobaa.io"].provisioner == "openshift-storage.noobaa.io/obc"
    assert classes["openshift-storage.noobaa.io"].parameters == {"bucketclass": "noobaa-default-bucket-class"}
    for svc in ("rook-ceph-rgw-ocs-storagecluster-cephobjectstore", "s3"):
        assert not odf.core.read_namespaced_service(svc, NS).spec.selector
        assert odf.core.read_namespaced_endpoints(svc, NS).subsets[0].addresses[0].ip.startswith("127.")
    assert odf.route_host("ocs-storagecluster-cephobjectstore") == \
        "ocs-storagecluster-cephobjectstore-openshift-storage.apps.vsphere-local.example.test"
    assert odf.route_host("s3") == "s3-openshift-storage.apps.vsphere-local.example.test"


@pytest.mark.parametrize("storage_class,route,host", [
    ("ocs-storagecluster-ceph-rgw", "ocs-storagecluster-cephobjectstore",
     "rook-ceph-rgw-ocs-storagecluster-cephobjectstore.openshift-storage.svc"),
    ("openshift-storage.noobaa.io", "s3", "s3.openshift-storage.svc"),
])
def test_obc_binds_bucket_user_and_keys(odf, storage_class, route, host):
    name = "obc-" + route[:2]
    odf.create_obc(name, storage_class)
    obc = odf.wait_bound(name)
    bucket = obc["spec"]["bucketName"]
    assert bucket.startswith(name + "-") and len(bucket) == len(name) + 37
    assert obc["spec"]["objectBucketName"] == f"obc-{NS}-{name}"
    assert "objectbucket.io/finalizer" in obc["metadata"]["finalizers"]
    cm = odf.core.read_namespaced_config_map(name, NS)
    assert cm.data == {"BUCKET_HOST": host, "BUCKET_NAME": bucket, "BUCKET_PORT": "80",
                       "BUCKET_REGION": "us-east-1", "BUCKET_SUBREGION": ""}
    assert cm.metadata.owner_references[0].uid == obc["metadata"]["uid"]
    secret = odf.core.read_namespaced_secret(name, NS)
    assert secret.metadata.owner_references[0].kind == "ObjectBucketClaim"
    ob = odf.co.get_cluster_custom_object("objectbucket.io", "v1alpha1", "objectbuckets", f"obc-{NS}-{name}")
    assert ob["spec"]["endpoint"]["bucketName"] == bucket and ob["status"]["phase"] == "Bound"

    key, secret_key = odf.obc_keys(name)
    s3 = odf.s3(route, key, secret_key)
    s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello")
    assert s3.get_object(Bucket=bucket, Key="hello.txt")["Body"].read() == b"hello"
    # Signatures are checked: a wrong secret is rejected.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        odf.s3(route, key, secret_key[:-1] + ("A" if secret_key[-1] != "A" else "B")).list_objects_v2(Bucket=bucket)
    assert _code(e) == "SignatureDoesNotMatch"
    # The user's policy covers its own bucket only.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket="some-other-bucket-name", Key="x", Body=b"x")
    assert _code(e) in ("AccessDenied", "NoSuchBucket")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.create_bucket(Bucket="a-bucket-of-my-own")
    assert _code(e) == "AccessDenied"


def test_obc_with_unknown_class_stays_pending_with_event(odf):
    odf.create_obc("nowhere", "no-such-class")
    wait_for(lambda: (odf.obc("nowhere").get("status") or {}).get("phase") == "Pending", what="Pending")
    events = wait_for(lambda: [e for e in odf.core.list_namespaced_event(NS).items
                               if e.involved_object.name == "nowhere" and e.reason == "ProvisioningFailed"],
                      what="ProvisioningFailed event")
    assert 'storageclass.storage.k8s.io "no-such-class" not found' in events[0].message
    assert not odf.obc("nowhere")["spec"].get("bucketName")
    odf.delete_obc("nowhere")


def test_obc_deletion_deletes_bucket_user_and_objects(odf):
    name, bucket = "fixedname", "fixed-name-bucket-for-deletion"
    odf.create_obc(name, "ocs-storagecluster-ceph-rgw", bucketName=bucket)
    odf.wait_bound(name)
    key, secret = odf.obc_keys(name)
    s3 = odf.s3("ocs-storagecluster-cephobjectstore", key, secret)
    s3.put_object(Bucket=bucket, Key="leftover", Body=b"x")
    odf.delete_obc(name)
    import kubernetes
    for read in (odf.core.read_namespaced_secret, odf.core.read_namespaced_config_map):
        with pytest.raises(kubernetes.client.ApiException) as e:
            read(name, NS)
        assert e.value.status == 404
    with pytest.raises(kubernetes.client.ApiException):
        odf.co.get_cluster_custom_object("objectbucket.io", "v1alpha1", "objectbuckets", f"obc-{NS}-{name}")
    # The user and its key are gone.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.list_objects_v2(Bucket=bucket)
    assert _code(e) == "InvalidAccessKeyId"
    # Same bucket name again: a new, empty bucket (reclaimPolicy Delete emptied and deleted the old one).
    odf.create_obc(name, "ocs-storagecluster-ceph-rgw", bucketName=bucket)
    odf.wait_bound(name)
    key, secret = odf.obc_keys(name)
    assert odf.s3("ocs-storagecluster-cephobjectstore", key, secret).list_objects_v2(
        Bucket=bucket).get("KeyCount") == 0
    odf.delete_obc(name)
