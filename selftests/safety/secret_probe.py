"""Not collected by `pytest selftests` (no test_ prefix): run explicitly by test_chaos_and_secrets.py
next to the suite. It leaks on purpose every secret it can reach (the API token, an S3 key read from a
Secret named by SAFETY_PROBE_SECRET=namespace/name) into logs, stdout, stderr, an allure attachment and
an xfail message; the run's reports must still hold none of them."""
from __future__ import annotations

import base64
import logging
import os
import sys

import allure
import pytest

from utilities import kube

log = logging.getLogger("secret-probe")


def _s3_key(cluster) -> str:
    ns, name = os.environ["SAFETY_PROBE_SECRET"].split("/")
    secret = kube.call(cluster.core.read_namespaced_secret, name, ns)
    return base64.b64decode(secret.data["AWS_SECRET_ACCESS_KEY"]).decode()


def test_leaks_into_logs_output_and_attachments(cluster):
    key = _s3_key(cluster)
    log.warning("the API token is %s and the S3 key %s", cluster.token, key)
    log.info("authorization: Bearer %s", cluster.token)
    print(f"token={cluster.token} key={key} b64={base64.b64encode(key.encode()).decode()}")
    sys.stderr.write(f"stderr token={cluster.token}\n")
    allure.attach(f"token: {cluster.token}\nkey: {key}\n", name="evidence", attachment_type=allure.attachment_type.TEXT)


def test_leaks_into_a_report_message(cluster):
    pytest.xfail(f"expected failure quoting token {cluster.token} and key {_s3_key(cluster)}")
