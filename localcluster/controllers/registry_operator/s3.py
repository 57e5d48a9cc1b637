"""The operator's S3 driver (operator-facts.md §5, §3.2, §6): credentials, trustedCA, the registry's
S3 environment, and HeadBucket / CreateBucket / DeleteBucket against the real S3 server with boto3
(in a thread executor) through the cluster network proxy (`settings.netproxy_url`).

Messages follow the real operator (cluster-image-registry-operator `pkg/storage/s3/s3.go`); AWS errors
are rendered the way aws-sdk-go v1 renders them (`Code: message\\n\\tstatus code: N, request id: ...`),
transport failures as `RequestError: send request failed\\ncaused by: <Op> "<url>": <cause>`.
"""
from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from . import consts as C
from .conditions import FALSE, TRUE, UNKNOWN, set_condition
from .errors import SyncError
from .storage import DRIVERS, Driver, StorageContext, _conds

ACCESS_KEY = "REGISTRY_STORAGE_S3_ACCESSKEY"
SECRET_KEY = "REGISTRY_STORAGE_S3_SECRETKEY"
CLOUD_CREDENTIALS_SECRET = "installer-cloud-credentials"
CREDENTIALS_PATH = "/var/run/secrets/cloud/credentials"
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
DEFAULT_REGION = "us-east-1"

HTTP_STATUS_CODES = {301: "MovedPermanently", 307: "TemporaryRedirect", 400: "BadRequest", 403: "Forbidden",
                     404: "NotFound", 405: "MethodNotAllowed", 409: "Conflict", 500: "InternalServerError",
                     501: "NotImplemented", 502: "BadGateway", 503: "ServiceUnavailable"}
HTTP_STATUS_TEXT = {301: "Moved Permanently", 307: "Temporary Redirect", 400: "Bad Request", 403: "Forbidden",
                    404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 500: "Internal Server Error",
                    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable"}


# --------------------------------------------------------------------------- pure parts
def credentials_ini(access_key: str, secret_key: str) -> str:
    """The AWS shared-credentials file the operator writes into `image-registry-private-configuration`."""
    return f"[default]\naws_access_key_id = {access_key}\naws_secret_access_key = {secret_key}\n"


def missing_key_message(key: str) -> str:
    return (f'secret "{C.NAMESPACE}/{C.USER_CONFIG_SECRET}" does not contain required key "{key}"')


def cluster_credentials_message(cause: str) -> str:
    return f'unable to get cluster minted credentials "{C.NAMESPACE}/{CLOUD_CREDENTIALS_SECRET}": {cause}'


def trusted_ca_not_found(name: str) -> str:
    return f'failed to get trusted CA "{name}": configmap "{name}" not found'


def trusted_ca_missing_key(name: str) -> str:
    return f'trusted CA config map "{name}" does not contain required key "ca-bundle.crt"'


def deterministic_bucket_name(infra_name: str, region: str) -> str:
    """`<infrastructureName>-image-registry-<region>`, lowercase, at most 62 characters."""
    return f"{infra_name}-image-registry-{region}".lower()[:62]


def s3_env(conf: dict) -> list[dict]:
    """The registry environment for `spec.storage.s3` (release-4.17+ rules)."""
    env = [
        {"name": "REGISTRY_STORAGE", "value": "s3"},
        {"name": "REGISTRY_STORAGE_S3_BUCKET", "value": conf.get("bucket") or ""},
        {"name": "REGISTRY_STORAGE_S3_REGION", "value": conf.get("region") or ""},
    ]
    if conf.get("regionEndpoint"):
        env.append({"name": "REGISTRY_STORAGE_S3_REGIONENDPOINT", "value": conf["regionEndpoint"]})
    env.append({"name": "REGISTRY_STORAGE_S3_ENCRYPT", "value": "true" if conf.get("encrypt") else "false"})
    if conf.get("keyID"):
        env.append({"name": "REGISTRY_STORAGE_S3_KEYID", "value": conf["keyID"]})
    env.append({"name": "REGISTRY_STORAGE_S3_CREDENTIALSCONFIGPATH", "value": CREDENTIALS_PATH})
    chunk = conf.get("chunkSizeMiB")
    if isinstance(chunk, int) and 4 < chunk < 5121:
        env.append({"name": "REGISTRY_STORAGE_S3_CHUNKSIZE", "value": str(chunk * 1024 * 1024)})
    if conf.get("regionEndpoint"):
        env.append({"name": "REGISTRY_STORAGE_S3_USEDUALSTACK", "value": "true"})
    env.append({"name": "REGISTRY_STORAGE_S3_FORCEPATHSTYLE",
                "value": "false" if conf.get("virtualHostedStyle") else "true"})
    return env


def endpoint_url(conf: dict) -> str:
    if conf.get("regionEndpoint"):
        return conf["regionEndpoint"]
    return f"https://s3.{conf.get('region') or DEFAULT_REGION}.amazonaws.com"


def object_url(conf: dict, bucket: str) -> str:
    base = endpoint_url(conf).rstrip("/")
    if conf.get("virtualHostedStyle"):
        scheme, _, host = base.partition("://")
        return f"{scheme}://{bucket}.{host}"
    return f"{base}/{bucket}"


@dataclass
class AWSError(Exception):
    """An error as aws-sdk-go's awserr.Error: `code` and the full text."""
    code: str
    text: str

    def __str__(self) -> str:
        return self.text


def aws_error(exc: Exception, op: str, url: str) -> AWSError:
    """Render a botocore exception the way the real operator's aws-sdk-go would."""
    from botocore.exceptions import ClientError
    if isinstance(exc, ClientError):
        resp = exc.response or {}
        err = resp.get("Error") or {}
        meta = resp.get("ResponseMetadata") or {}
        status = int(meta.get("HTTPStatusCode") or 0)
        code = str(err.get("Code") or "")
        message = err.get("Message") or ""
        if not code or code.isdigit():            # HEAD answers have no body: the SDK uses the status
            code = HTTP_STATUS_CODES.get(status, code or "UnknownError")
            message = message or HTTP_STATUS_TEXT.get(status, "")
        rid = meta.get("RequestId") or ""
        hid = meta.get("HostId") or ""
        return AWSError(code, f"{code}: {message}\n\tstatus code: {status}, request id: {rid}, host id: {hid}")
    cause = _transport_cause(exc)
    return AWSError("RequestError", f'RequestError: send request failed\ncaused by: {op} "{url}": {cause}')


def _transport_cause(exc: Exception) -> str:
    from botocore.exceptions import ProxyConnectionError, SSLError
    text = str(exc)
    if isinstance(exc, SSLError) or "CERTIFICATE_VERIFY_FAILED" in text:
        if "hostname mismatch" in text or "doesn't match" in text:
            return "tls: failed to verify certificate: x509: certificate is valid for other names"
        return "tls: failed to verify certificate: x509: certificate signed by unknown authority"
    if isinstance(exc, ProxyConnectionError):
        return f"proxyconnect tcp: {text}"
    return text


# --------------------------------------------------------------------------- boto3 (blocking)
def make_client(conf: dict, access_key: str, secret_key: str, ca_file: str, proxy_url: str):
    import boto3
    from botocore.config import Config
    proxies = {"http": proxy_url, "https": proxy_url} if proxy_url else {}
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url(conf), region_name=conf.get("region") or DEFAULT_REGION,
        aws_access_key_id=access_key, aws_secret_access_key=secret_key, verify=ca_file,
        config=Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 2, "mode": "standard"},
                      proxies=proxies,
                      s3={"addressing_style": "virtual" if conf.get("virtualHostedStyle") else "path"}))


def _call(client, conf: dict, bucket: str, op: str, fn_name: str, **kw):
    try:
        return getattr(client, fn_name)(**kw)
    except Exception as e:  # noqa: BLE001 - every botocore error becomes an AWSError
        raise aws_error(e, op, object_url(conf, bucket)) from e


def empty_and_delete_bucket(client, conf: dict, bucket: str) -> None:
    paginator = client.get_paginator("list_object_versions")
    try:
        for page in paginator.paginate(Bucket=bucket):
            objs = [{"Key": o["Key"], "VersionId": o["VersionId"]}
                    for o in (page.get("Versions") or []) + (page.get("DeleteMarkers") or [])]
            for i in range(0, len(objs), 1000):
                client.delete_objects(Bucket=bucket, Delete={"Objects": objs[i:i + 1000], "Quiet": True})
    except Exception as e:  # noqa: BLE001
        raise aws_error(e, "GET", object_url(conf, bucket)) from e
    for up in (_call(client, conf, bucket, "GET", "list_multipart_uploads", Bucket=bucket).get("Uploads") or []):
        _call(client, conf, bucket, "DELETE", "abort_multipart_upload", Bucket=bucket, Key=up["Key"],
              UploadId=up["UploadId"])
    _call(client, conf, bucket, "DELETE", "delete_bucket", Bucket=bucket)


# --------------------------------------------------------------------------- the driver
class S3Driver(Driver):
    key, name = "s3", "S3"

    # ---------------------------------------------------------------- inputs
    @staticmethod
    def _extra(ctx: StorageContext, name: str):
        return (ctx.extra or {}).get(name)

    async def credentials(self, ctx: StorageContext) -> tuple[str, str]:
        get_secret = self._extra(ctx, "get_secret")
        user = await get_secret(C.USER_CONFIG_SECRET)
        if user is not None:
            data = user.get("data") or {}
            for k in (ACCESS_KEY, SECRET_KEY):
                if k not in data:
                    raise SyncError(missing_key_message(k))
            return (base64.b64decode(data[ACCESS_KEY]).decode(), base64.b64decode(data[SECRET_KEY]).decode())
        cloud = await get_secret(CLOUD_CREDENTIALS_SECRET)
        if cloud is None:
            raise SyncError(cluster_credentials_message(f'secret "{CLOUD_CREDENTIALS_SECRET}" not found'))
        data = {k: base64.b64decode(v).decode() for k, v in (cloud.get("data") or {}).items()}
        if "aws_access_key_id" in data and "aws_secret_access_key" in data:
            return data["aws_access_key_id"], data["aws_secret_access_key"]
        ini = data.get("credentials", "")
        vals = dict(line.split("=", 1) for line in ini.splitlines() if "=" in line)
        vals = {k.strip(): v.strip() for k, v in vals.items()}
        if "aws_access_key_id" in vals and "aws_secret_access_key" in vals:
            return vals["aws_access_key_id"], vals["aws_secret_access_key"]
        raise SyncError(cluster_credentials_message(
            f'secret "{CLOUD_CREDENTIALS_SECRET}" does not contain required key "aws_access_key_id"'))

    async def trusted_ca(self, conf: dict, ctx: StorageContext) -> tuple[Optional[str], bool]:
        """(PEM bundle, use the system pool too), as the operator's CABundle()."""
        get_cm = self._extra(ctx, "get_configmap")
        name = ((conf.get("trustedCA") or {}).get("name") or "")
        if name:
            cm = await get_cm("openshift-config", name)
            if cm is None:
                raise SyncError(trusted_ca_not_found(name))
            pem = (cm.get("data") or {}).get("ca-bundle.crt")
            if pem is None:
                raise SyncError(trusted_ca_missing_key(name))
            return pem, False
        cm = await get_cm("openshift-config-managed", "kube-cloud-config")
        return ((cm or {}).get("data") or {}).get("ca-bundle.pem"), True

    def _ca_file(self, ctx: StorageContext, pem: Optional[str], system: bool) -> str:
        parts = []
        if system:
            try:
                parts.append(Path(SYSTEM_CA_BUNDLE).read_text())
            except OSError:
                pass
        if pem:
            parts.append(pem if pem.endswith("\n") else pem + "\n")
        blob = "".join(parts)
        d = Path(self._extra(ctx, "state_dir") or "/tmp") / "operator"
        d.mkdir(parents=True, exist_ok=True)
        f = d / f"s3-ca-{hashlib.sha256(blob.encode()).hexdigest()[:16]}.pem"
        if not f.exists():
            tmp = f.with_suffix(".tmp")
            tmp.write_text(blob)
            os.replace(tmp, f)
        return str(f)

    async def client(self, conf: dict, ctx: StorageContext):
        key, secret = await self.credentials(ctx)
        pem, system = await self.trusted_ca(conf, ctx)
        ca_file = self._ca_file(ctx, pem, system)
        if self._extra(ctx, "ignore_trusted_ca"):
            ca_file = False     # fault operator.ignoreTrustedCA (issue 9): no verification at all
        proxy = self._extra(ctx, "proxy_url") or ""
        return await asyncio.get_running_loop().run_in_executor(None, make_client, conf, key, secret, ca_file,
                                                                 proxy)

    @staticmethod
    async def _run(fn, *args, **kw):
        return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kw))

    # ---------------------------------------------------------------- Driver
    def mark_changed(self, cr):
        set_condition(_conds(cr), "StorageExists", UNKNOWN, "S3 Configuration Changed",
                      "S3 storage is in an unknown state")

    async def storage_exists(self, cr, ctx):
        conf = self.config(cr)
        bucket = conf.get("bucket") or ""
        if not bucket:
            return False
        client = await self.client(conf, ctx)
        try:
            await self._run(_call, client, conf, bucket, "Head", "head_bucket", Bucket=bucket)
        except AWSError as e:
            set_condition(_conds(cr), "StorageExists", FALSE, e.code, e.text)
            return False
        set_condition(_conds(cr), "StorageExists", TRUE, "S3 Bucket Exists", "")
        return True

    async def create_storage(self, cr, ctx):
        storage = cr["spec"]["storage"]
        conf = copy.deepcopy(self.config(cr))
        conds = _conds(cr)
        client = await self.client(conf, ctx)
        user_bucket = conf.get("bucket") or ""
        exists = False
        if user_bucket:
            try:
                await self._run(_call, client, conf, user_bucket, "Head", "head_bucket", Bucket=user_bucket)
                exists = True
            except AWSError as e:
                if e.code in ("NoSuchBucket", "Forbidden", "NotFound"):
                    set_condition(conds, "StorageExists", FALSE, e.code, e.text)
                else:
                    set_condition(conds, "StorageExists", UNKNOWN, "Unknown Error Occurred", e.text)
                    raise SyncError(e.text) from e
        if exists:
            if not storage.get("managementState"):
                storage["managementState"] = "Unmanaged"
            set_condition(conds, "StorageExists", TRUE, "S3 Bucket Exists",
                          "User supplied S3 bucket exists and is accessible")
        else:
            bucket = user_bucket
            if not bucket:
                infra = self._extra(ctx, "infra") or {}
                infra_name = ((infra.get("status") or {}).get("infrastructureName") or "")
                bucket = deterministic_bucket_name(infra_name, conf.get("region") or DEFAULT_REGION)
            kw = {"Bucket": bucket}
            region = conf.get("region") or DEFAULT_REGION
            if region != "us-east-1":
                kw["CreateBucketConfiguration"] = {"LocationConstraint": region}
            try:
                await self._run(_call, client, conf, bucket, "PUT", "create_bucket", **kw)
            except AWSError as e:
                if e.code == "BucketAlreadyExists":
                    msg = f"The bucket {bucket} exists, but is owned by another account"
                    set_condition(conds, "StorageExists", FALSE, "Unable to Access Bucket", msg)
                    raise SyncError(msg) from e
                if e.code != "BucketAlreadyOwnedByYou":
                    set_condition(conds, "StorageExists", FALSE, e.code, e.text)
                    raise SyncError(e.text) from e
            try:   # WaitUntilBucketExists
                await self._run(_call, client, conf, bucket, "Head", "head_bucket", Bucket=bucket)
            except AWSError as e:
                set_condition(conds, "StorageExists", FALSE, e.code, e.text)
                raise SyncError(e.text) from e
            conf["bucket"] = bucket
            if not storage.get("managementState"):
                storage["managementState"] = "Managed"
            set_condition(conds, "StorageExists", TRUE, "Creation Successful", "S3 bucket was successfully created")
        if storage.get("managementState") == "Managed":
            await self._managed_extras(cr, conf, client, ctx)
        storage["s3"] = conf

    async def _managed_extras(self, cr: dict, conf: dict, client, ctx: StorageContext) -> None:
        conds = _conds(cr)
        bucket = conf["bucket"]
        infra_name = (((self._extra(ctx, "infra") or {}).get("status") or {}).get("infrastructureName") or "")
        steps = [
            ("StoragePublicAccessBlocked", "Public Access Block Successful",
             "Public access to the S3 bucket and its contents have been successfully blocked.",
             "put_public_access_block", {"PublicAccessBlockConfiguration": {
                 "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
                 "RestrictPublicBuckets": True}}),
            ("StorageTagged", "Tagging Successful", "UserTags were successfully applied to the S3 bucket",
             "put_bucket_tagging", {"Tagging": {"TagSet": [
                 {"Key": f"kubernetes.io/cluster/{infra_name}", "Value": "owned"},
                 {"Key": "Name", "Value": f"{infra_name}-image-registry"}]}}),
        ]
        algo = "aws:kms" if conf.get("keyID") else "AES256"
        rule = {"SSEAlgorithm": algo}
        if conf.get("keyID"):
            rule["KMSMasterKeyID"] = conf["keyID"]
        steps.append(("StorageEncrypted", "Encryption Successful",
                      f"Default {'KMS' if conf.get('keyID') else 'AES256'} encryption was successfully enabled "
                      f"on the S3 bucket", "put_bucket_encryption",
                      {"ServerSideEncryptionConfiguration": {"Rules": [{"ApplyServerSideEncryptionByDefault": rule}]}}))
        steps.append(("StorageIncompleteUploadCleanupEnabled", "Enable Cleanup Successful",
                      "Default cleanup of incomplete multipart uploads after one (1) day was successfully enabled",
                      "put_bucket_lifecycle_configuration", {"LifecycleConfiguration": {"Rules": [{
                          "ID": "cleanup-incomplete-multipart-registry-uploads", "Status": "Enabled",
                          "Filter": {"Prefix": ""},
                          "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]}}))
        for cond, reason, message, fn, kw in steps:
            try:
                await self._run(_call, client, conf, bucket, "PUT", fn, Bucket=bucket, **kw)
            except AWSError as e:
                set_condition(conds, cond, FALSE, e.code, e.text)
                continue
            set_condition(conds, cond, TRUE, reason, message)
            if cond == "StorageEncrypted":
                conf["encrypt"] = True

    async def remove_storage(self, cr, ctx):
        if (cr["spec"].get("storage") or {}).get("managementState") != "Managed":
            return
        conf = copy.deepcopy(((cr.get("status") or {}).get("storage") or {}).get("s3") or {})
        bucket = conf.get("bucket") or ""
        if not bucket:
            return
        client = await self.client(conf, ctx)
        try:
            await self._run(empty_and_delete_bucket, client, conf, bucket)
        except AWSError as e:
            if e.code != "NoSuchBucket":
                set_condition(_conds(cr), "StorageExists", UNKNOWN, e.code, e.text)
                raise SyncError(e.text) from e
        spec_s3 = (cr["spec"].get("storage") or {}).get("s3")
        if isinstance(spec_s3, dict):
            spec_s3["bucket"] = ""
        set_condition(_conds(cr), "StorageExists", FALSE, "S3 Bucket Deleted", "The S3 bucket has been removed.")

    def volumes(self, cr):
        return ([{"name": C.PRIVATE_CONFIG_SECRET, "secret": {"secretName": C.PRIVATE_CONFIG_SECRET}}],
                [{"name": C.PRIVATE_CONFIG_SECRET, "mountPath": "/var/run/secrets/cloud", "readOnly": True}],
                s3_env(self.config(cr)))

    async def secret_data(self, cr, ctx):
        key, secret = await self.credentials(ctx)
        return {"credentials": base64.b64encode(credentials_ini(key, secret).encode()).decode()}

    async def ca_bundle(self, cr, ctx):
        try:
            pem, _system = await self.trusted_ca(self.config(cr), ctx)
        except SyncError:
            return None
        return pem


DRIVERS["s3"] = S3Driver

__all__ = ["S3Driver", "AWSError", "aws_error", "credentials_ini", "deterministic_bucket_name", "s3_env",
           "missing_key_message", "cluster_credentials_message", "trusted_ca_not_found", "trusted_ca_missing_key"]
