"""What the OpenShift registry records in the image API when a manifest is pushed (issue 7, item 17).

The real registry, on a manifest PUT to `<namespace>/<name>`, creates (through an ImageStreamMapping)
the cluster-scoped `images.image.openshift.io/<digest>` and the ImageStream `<namespace>/<name>`
(if absent) with the tag in `status.tags`. Deleting the namespace deletes the stream, never the Image:
that is left for the image pruner. This keeps only what the suite and its selftests read: the Image's
`dockerImageReference` and media type, and the stream's `status.dockerImageRepository` and tags.
"""
from __future__ import annotations

import datetime
import logging

from localcluster.client import ApiError, KubeClient, path

log = logging.getLogger("localcluster.images")

INTERNAL_REGISTRY = "image-registry.openshift-image-registry.svc:5000"
API = "image.openshift.io/v1"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ImageAPI:
    def __init__(self, client: KubeClient):
        self.client = client

    async def record(self, repo: str, reference: str, digest: str | None, media_type: str | None) -> None:
        namespace, _, name = repo.partition("/")
        if not name or not digest:
            return
        ref = f"{INTERNAL_REGISTRY}/{namespace}/{name}@{digest}"
        image = {"apiVersion": API, "kind": "Image", "metadata": {"name": digest},
                 "dockerImageReference": ref, "dockerImageManifestMediaType": media_type or ""}
        try:
            await self.client.create(path(API, "images"), image)
        except ApiError as e:
            if e.status != 409:
                raise
        tag = reference if not reference.startswith("sha256:") else None
        for _ in range(10):
            p = path(API, "imagestreams", namespace, name)
            stream = await self.client.get_or_none(p)
            if stream is None:
                try:
                    stream = await self.client.create(path(API, "imagestreams", namespace), {
                        "apiVersion": API, "kind": "ImageStream",
                        "metadata": {"name": name, "namespace": namespace}, "spec": {}})
                except ApiError as e:
                    if e.status == 409:
                        continue
                    if e.status == 404:     # the namespace is gone
                        return
                    raise
            status = dict(stream.get("status") or {})
            status["dockerImageRepository"] = f"{INTERNAL_REGISTRY}/{namespace}/{name}"
            tags = [t for t in status.get("tags") or [] if t.get("tag") != tag]
            if tag:
                old = next((t for t in status.get("tags") or [] if t.get("tag") == tag), {"items": []})
                tags.append({"tag": tag, "items": [{"created": _now(), "dockerImageReference": ref,
                                                    "image": digest, "generation": 1}] + old["items"]})
            status["tags"] = tags
            try:
                await self.client.replace(path(API, "imagestreams", namespace, name, "status"),
                                          dict(stream, status=status))
                return
            except ApiError as e:
                if e.status == 404:
                    return
                if e.status != 409:
                    raise
