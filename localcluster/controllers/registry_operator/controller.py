"""The reconcile loop of the image registry operator: informers that only wake a one-key work queue,
and a sync that reads what it needs straight from the API server (operator-facts.md §3, §6, §7)."""
from __future__ import annotations

import asyncio
import copy
import datetime
import json
import logging
from typing import Optional

from localcluster import settings as S
from localcluster.client import ApiError, Informer, KubeClient, path

from . import consts as C
from .bootstrap import bootstrap_config, platform_storage
from . import s3
from .conditions import (RELATED_OBJECTS, cluster_operator_conditions, config_conditions,
                         degraded_due_at, get_condition, node_ca_conditions, set_condition,
                         OTHER_CONTROLLERS_DEGRADED)
from .errors import SyncError
from .resources import (apply_defaults, certificates_configmap, checksum, deployment, json_merge_patch,
                        needs_update, node_ca_daemonset, pdb, private_config_secret, route_hosts, routes,
                        service, service_account, updated_object, verify_config)
from .storage import StorageContext, driver_for_status, sync_storage

log = logging.getLogger("localcluster.operator")

CONFIG_P = path(C.CONFIG_API, "configs", None, C.CONFIG_NAME)
CONFIG_COLLECTION = path(C.CONFIG_API, "configs")
CO_P = path("config.openshift.io/v1", "clusteroperators", None, C.CLUSTER_OPERATOR)
IMAGE_CONFIG_P = path("config.openshift.io/v1", "images", None, "cluster")
INFRA_P = path("config.openshift.io/v1", "infrastructures", None, "cluster")
PRUNER_P = path(C.CONFIG_API, "imagepruners", None, "cluster")

# (apiVersion, plural) of the namespaced objects the operator owns.
KINDS = {
    "Deployment": ("apps/v1", "deployments"), "DaemonSet": ("apps/v1", "daemonsets"),
    "Service": ("v1", "services"), "ServiceAccount": ("v1", "serviceaccounts"),
    "Secret": ("v1", "secrets"), "ConfigMap": ("v1", "configmaps"),
    "PodDisruptionBudget": ("policy/v1", "poddisruptionbudgets"),
    "Route": ("route.openshift.io/v1", "routes"),
    "PersistentVolumeClaim": ("v1", "persistentvolumeclaims"),
}


class Requeue(Exception):
    """Retry the sync soon (a write conflict, an object still being deleted)."""


def _stripped_status(status: dict) -> dict:
    return json.loads(json.dumps(status or {}, sort_keys=True))


class ImageRegistryOperator:
    def __init__(self, client: KubeClient, settings: S.Settings, **extra):
        self.client = client
        self.settings = settings
        self._wake = asyncio.Event()
        self._informers: list[Informer] = []
        self._faults_informer: Optional[Informer] = None
        self._timer: Optional[asyncio.TimerHandle] = None
        self.sync_count = 0          # for tests: how many syncs ran
        self._infra: Optional[dict] = None

    # --- the loop ---------------------------------------------------------------------------------

    def enqueue(self, *_args) -> None:
        self._wake.set()

    def _enqueue_after(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(max(0.0, seconds), self._wake.set)

    def _watched(self) -> list[str]:
        ns = C.NAMESPACE
        return [
            CONFIG_COLLECTION,
            path("apps/v1", "deployments", ns), path("apps/v1", "daemonsets", ns),
            path("v1", "services", ns), path("v1", "serviceaccounts", ns), path("v1", "secrets", ns),
            path("v1", "configmaps", ns), path("v1", "persistentvolumeclaims", ns),
            path("policy/v1", "poddisruptionbudgets", ns), path("route.openshift.io/v1", "routes", ns),
            path("config.openshift.io/v1", "clusteroperators"), path("config.openshift.io/v1", "images"),
            path("config.openshift.io/v1", "infrastructures"), path(C.CONFIG_API, "imagepruners"),
            path("v1", "configmaps", "openshift-config"),   # S3 trustedCA
        ]

    async def run(self) -> None:
        resync = self.settings.resync_seconds
        self._faults_informer = Informer(self.client, path("v1", "configmaps", S.FAULTS_NAMESPACE),
                                         self.enqueue, resync=resync)
        self._informers = [Informer(self.client, p, self.enqueue, resync=resync) for p in self._watched()]
        self._informers.append(self._faults_informer)
        tasks = [asyncio.create_task(i.run()) for i in self._informers]
        try:
            await self._faults_informer.synced.wait()
            backoff = 0.1
            self._wake.set()
            while True:
                await self._wake.wait()
                self._wake.clear()
                await asyncio.sleep(0.02)     # coalesce a burst of events into one sync
                self._wake.clear()
                try:
                    await self.sync()
                    backoff = 0.1
                except asyncio.CancelledError:
                    raise
                except Requeue as e:
                    log.debug("requeue: %s", e)
                    self._enqueue_after(backoff)
                    backoff = min(backoff * 2, 5.0)
                except Exception:  # noqa: BLE001 - a controller keeps running
                    log.exception("image registry operator sync failed")
                    self._enqueue_after(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            if self._timer is not None:
                self._timer.cancel()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- helpers ----------------------------------------------------------------------------------

    def _fault(self, key: str) -> bool:
        return self.faults().get(key, "").strip().lower() == "true"

    def faults(self) -> dict:
        cm = self._faults_informer.get(S.FAULTS_NAMESPACE, S.FAULTS_CONFIGMAP) if self._faults_informer else None
        return dict((cm or {}).get("data") or {})

    async def _trusted_ca_error(self, cr: dict) -> Optional[str]:
        """The certificates controller's error for a missing trustedCA config map. It reads no storage
        while Removed, nor with no or several storage types (CIRO pkg/resource/caconfig.go
        storageDriver, 4.16 to main)."""
        spec = cr.get("spec") or {}
        storage = {k: v for k, v in (spec.get("storage") or {}).items() if k != "managementState" and v is not None}
        if spec.get("managementState") == "Removed" or list(storage) != ["s3"]:
            return None
        name = ((storage["s3"] or {}).get("trustedCA") or {}).get("name")
        if not name:
            return None
        cm = await self._get(path("v1", "configmaps", "openshift-config", name))
        if cm is None:
            return s3.trusted_ca_not_found(name)
        if "ca-bundle.crt" not in (cm.get("data") or {}):
            return s3.trusted_ca_missing_key(name)
        return None

    async def _get(self, p: str) -> Optional[dict]:
        return await self.client.get_or_none(p)

    async def _delete(self, p: str) -> None:
        await self.client.delete_if_exists(p, grace_period_seconds=0, propagation_policy="Foreground")

    async def ensure(self, desired: dict) -> dict:
        """Create `desired` or revert the existing object to it."""
        api, plural = KINDS[desired["kind"]]
        name = desired["metadata"]["name"]
        p = path(api, plural, C.NAMESPACE, name)
        existing = await self._get(p)
        if existing is None:
            try:
                return await self.client.create(path(api, plural, C.NAMESPACE), desired)
            except ApiError as e:
                if e.status == 409:
                    raise Requeue(f"{plural}/{name} appeared meanwhile") from e
                raise
        if (existing.get("metadata") or {}).get("deletionTimestamp"):
            raise Requeue(f"{plural}/{name} is being deleted")
        if desired["kind"] == "Deployment" and self._fault(C.FAULT_KEEP_USER_EDITS):
            return existing     # fault operator.keepUserEdits (issue 9): an existing Deployment is left as is
        if needs_update(desired, existing):
            log.info("updating %s/%s", plural, name)
            try:
                return await self.client.replace(p, updated_object(desired, existing))
            except ApiError as e:
                if e.status in (404, 409):
                    raise Requeue(f"{plural}/{name}: {e}") from e
                raise
        return existing

    def _storage_context(self) -> StorageContext:
        pvc_p = lambda name: path("v1", "persistentvolumeclaims", C.NAMESPACE, name)  # noqa: E731

        async def get_pvc(name):
            return await self._get(pvc_p(name))

        async def create_pvc(body):
            mode = self.faults().get(C.FAULT_DEFAULT_CLAIM_ACCESS_MODE, "").strip()
            if mode:
                # Fault knob: the operator creates its own claim with another access mode (and then
                # refuses it in checkPVC, as a broken operator would).
                body = copy.deepcopy(body)
                body["spec"]["accessModes"] = [mode]
            try:
                return await self.client.create(path("v1", "persistentvolumeclaims", C.NAMESPACE), body)
            except ApiError as e:
                raise SyncError(e.message or str(e)) from e

        async def delete_pvc(name):
            try:
                await self.client.delete(pvc_p(name))
            except ApiError as e:
                if e.status != 404:
                    raise

        async def get_secret(name):
            return await self._get(path("v1", "secrets", C.NAMESPACE, name))

        async def get_configmap(namespace, name):
            return await self._get(path("v1", "configmaps", namespace, name))

        faults = self.faults()
        skip = faults.get(C.FAULT_SKIP_PVC_CHECKS, "").strip().lower() == "true"
        several = faults.get(C.FAULT_ACCEPT_SEVERAL_STORAGE_TYPES, "").strip().lower() == "true"
        # S3 driver inputs: secrets/configmaps, the infrastructure, the cluster network proxy.
        extra = {"get_secret": get_secret, "get_configmap": get_configmap, "infra": self._infra,
                 "proxy_url": getattr(self.settings, "netproxy_url", ""), "state_dir": self.settings.state_dir,
                 "ignore_trusted_ca": self._fault(C.FAULT_IGNORE_TRUSTED_CA)}
        return StorageContext(get_pvc=get_pvc, create_pvc=create_pvc, delete_pvc=delete_pvc,
                              skip_pvc_checks=skip, accept_several_storage_types=several, extra=extra)

    # --- sync -------------------------------------------------------------------------------------

    async def sync(self) -> None:
        self.sync_count += 1
        cr = await self._get(CONFIG_P)
        if cr is None:
            await self.bootstrap()
            return
        if cr["metadata"].get("deletionTimestamp"):
            await self.finalize(cr)
            return
        prev = copy.deepcopy(cr)
        cr.setdefault("spec", {})
        cr.setdefault("status", {})
        cr["status"].setdefault("conditions", [])
        state = cr["spec"].get("managementState") or ""
        infra = await self._get(INFRA_P)
        self._infra = infra

        if state in ("Managed", "Removed"):
            raw = self.faults().get(C.FAULT_MUTATE_SPEC, "").strip()
            if raw:
                try:
                    cr["spec"] = json_merge_patch(cr["spec"], json.loads(raw))
                except ValueError:
                    log.warning("fault %s is not JSON: %r", C.FAULT_MUTATE_SPEC, raw)

        apply_error: Optional[SyncError] = None
        op_routes: list = []
        if state == "Managed":
            apply_error = await self.create_or_update(cr, infra)
        elif state == "Removed":
            await self.remove_resources(cr)
        elif state == "Unmanaged":
            pass
        else:
            log.warning("unknown custom resource state: %s", state)
            return

        deploy = await self._get(path("apps/v1", "deployments", C.NAMESPACE, C.DEPLOYMENT_NAME))
        if state != "Unmanaged":
            op_routes = await self._operator_routes()
        judged = deploy
        if deploy is not None and self._fault(C.FAULT_AVAILABLE_WHILE_DOWN):
            # Fault (issue 9): the conditions are computed as if every replica were available.
            judged = copy.deepcopy(deploy)
            n = int((deploy.get("spec") or {}).get("replicas") or 1)
            judged.setdefault("status", {}).update(replicas=n, updatedReplicas=n, readyReplicas=n,
                                                   availableReplicas=n)
        cr["status"]["conditions"] = config_conditions(
            state, judged, apply_error, cr["status"]["conditions"], self.settings.degraded_grace_seconds,
            routes=tuple(op_routes), release=S.version_tuple(self.settings.openshift))
        if state != "Unmanaged":
            ds = await self.ensure_node_ca()
            for t, st, reason, msg in node_ca_conditions(ds):
                set_condition(cr["status"]["conditions"], t, st, reason, msg)
        # The operator's other controllers (image config, registry certificates, node-ca) each report
        # their own Degraded condition; they meet no error here.
        for t in OTHER_CONTROLLERS_DEGRADED:
            set_condition(cr["status"]["conditions"], t, "False", "AsExpected", "")
        # ...except the certificates controller when the S3 trustedCA config map is missing
        # (operator-facts.md §5.2): Degraded at once, no grace period.
        ca_error = await self._trusted_ca_error(cr)
        if ca_error:
            set_condition(cr["status"]["conditions"], "ImageRegistryCertificatesControllerDegraded", "True",
                          "Error", f"image-registry-certificates: {ca_error}")
        cr["status"]["readyReplicas"] = int(((deploy or {}).get("status") or {}).get("readyReplicas") or 0)
        cr["status"].setdefault("storage", {})
        cr["status"].setdefault("storageManaged", False)

        # Spec / metadata first (the update bumps the generation), then status.
        if cr["spec"] != prev.get("spec", {}) or cr["metadata"] != prev["metadata"]:
            body = {k: v for k, v in cr.items() if k != "status"}
            try:
                updated = await self.client.replace(CONFIG_P, body)
            except ApiError as e:
                if e.status in (404, 409):
                    raise Requeue(f"config update: {e}") from e
                raise
            cr["metadata"] = updated["metadata"]
        cr["status"]["observedGeneration"] = int(cr["metadata"].get("generation") or 0)
        if _stripped_status(cr["status"]) != _stripped_status(prev.get("status")):
            body = dict(cr)
            try:
                await self.client.replace(path(C.CONFIG_API, "configs", None, C.CONFIG_NAME, "status"), body)
            except ApiError as e:
                if e.status in (404, 409):
                    raise Requeue(f"config status update: {e}") from e
                raise

        await self.sync_cluster_operator(cr, deploy)
        if state != "Unmanaged":
            await self.sync_image_config(state, deploy, op_routes)
        due = degraded_due_at(cr["status"]["conditions"], self.settings.degraded_grace_seconds)
        if due is not None:
            delay = (due - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
            self._enqueue_after(delay + 1.0)

    async def bootstrap(self) -> None:
        infra = await self._get(INFRA_P)
        if infra is None:
            raise Requeue("infrastructures/cluster not found")
        config, pvc = bootstrap_config(infra)
        if pvc is not None and await self._get(
                path("v1", "persistentvolumeclaims", C.NAMESPACE, pvc["metadata"]["name"])) is None:
            await self.client.create(path("v1", "persistentvolumeclaims", C.NAMESPACE), pvc)
        log.info("bootstrapping config %s (%s)", C.CONFIG_NAME, config["spec"]["managementState"])
        try:
            await self.client.create(CONFIG_COLLECTION, config)
        except ApiError as e:
            if e.status != 409:
                raise
        self.enqueue()

    async def finalize(self, cr: dict) -> None:
        """The Config is being deleted: remove everything, then let it go (a fresh bootstrap follows)."""
        finalizers = cr["metadata"].get("finalizers") or []
        if C.FINALIZER not in finalizers:
            return
        cr.setdefault("status", {})
        await self.remove_resources(cr)
        await self.sync_image_config("Removed", None, [])
        body = copy.deepcopy(cr)
        body["metadata"]["finalizers"] = [f for f in finalizers if f != C.FINALIZER]
        body.pop("status", None)
        try:
            await self.client.replace(CONFIG_P, body)
        except ApiError as e:
            if e.status in (404,):
                return
            if e.status == 409:
                raise Requeue("finalizer removal conflict") from e
            raise

    # --- Managed ----------------------------------------------------------------------------------

    async def create_or_update(self, cr: dict, infra: Optional[dict]) -> Optional[SyncError]:
        spec = cr["spec"]
        try:
            verify_config(spec)
            apply_defaults(spec)
            driver = await sync_storage(cr, self._storage_context(), lambda: platform_storage(infra)[0])
            await self.apply_objects(cr, driver)
        except SyncError as e:
            log.info("unable to apply resources: %s", e)
            await self._sync_certificates_alone(cr)
            return e
        except ApiError as e:
            if e.status == 409:
                raise Requeue(str(e)) from e
            return SyncError(e.message or str(e))
        return None

    async def apply_objects(self, cr: dict, driver) -> None:
        spec = cr["spec"]
        await self.ensure(service_account())
        ctx = self._storage_context()
        secret = await self.ensure(private_config_secret(await driver.secret_data(cr, ctx)))
        certs = await self.ensure(await self._certificates(await driver.ca_bundle(cr, ctx)))
        await self.ensure(service())
        proxy = ((await self._get(path("config.openshift.io/v1", "proxies", None, "cluster"))) or {}).get(
            "status") or {}
        proxy = {"http": proxy.get("httpProxy"), "https": proxy.get("httpsProxy"), "noProxy": proxy.get("noProxy")}
        deps = checksum({"certs": certs.get("data") or {}, "secret": secret.get("data") or {}})
        volumes = driver.volumes(cr)
        suffix = self.faults().get(C.FAULT_S3_BUCKET_SUFFIX, "").strip()
        for e in volumes[2] if suffix else ():
            if e.get("name") == "REGISTRY_STORAGE_S3_BUCKET" and e.get("value"):
                # fault operator.s3BucketSuffix (issue 9): not the spec's bucket (names end at 63 characters)
                e["value"] = e["value"][:63 - len(suffix)] + suffix
        desired = deployment(spec, volumes, deps, proxy,
                             progress_deadline_seconds=S.progress_deadline_seconds(self.settings))
        raw = self.faults().get(C.FAULT_DEPLOYMENT_PATCH, "").strip()
        if raw:
            # Fault knob: the operator writes a Deployment unlike what the Config asks (merge patch).
            try:
                desired = json_merge_patch(desired, json.loads(raw))
            except ValueError:
                log.warning("fault %s is not JSON: %r", C.FAULT_DEPLOYMENT_PATCH, raw)
        if self.faults().get(C.FAULT_STALE_STORAGE_VOLUME, "").strip().lower() == "true":
            await self._keep_previous_claim(desired)
        await self.ensure(desired)
        await self.ensure(pdb(spec, self.faults().get(C.FAULT_PDB_MIN_AVAILABLE, "").strip() or None))
        user_secrets = {}
        for r in spec.get("routes") or []:
            if r.get("secretName"):
                s = await self._get(path("v1", "secrets", C.NAMESPACE, r["secretName"]))
                if s is not None:
                    user_secrets[r["secretName"]] = s
        wanted = routes(spec, user_secrets)
        for r in wanted:
            await self.ensure(r)
        names = {r["metadata"]["name"] for r in wanted}
        for r in await self._operator_routes():
            if r["metadata"]["name"] not in names:
                await self._delete(path("route.openshift.io/v1", "routes", C.NAMESPACE, r["metadata"]["name"]))

    async def _sync_certificates_alone(self, cr: dict) -> None:
        """The real operator's ImageRegistryCertificatesController writes image-registry-certificates on
        its own, so the storage CA bundle follows the trustedCA config map even while the main sync fails
        (operator-facts.md §4.2, §5.2). Only when the registry runs (the config map exists)."""
        try:
            if await self._get(path("v1", "configmaps", C.NAMESPACE, C.CERTS_CONFIGMAP)) is None:
                return
            from .storage import DRIVERS
            storage = (cr.get("spec") or {}).get("storage") or {}
            keys = [k for k in storage if k in DRIVERS]
            if len(keys) != 1:
                return
            driver = DRIVERS[keys[0]]()
            bundle = await driver.ca_bundle(cr, self._storage_context())
            if bundle:      # only a bundle read from the trustedCA config map; never remove one here
                await self.ensure(await self._certificates(bundle))
        except (SyncError, ApiError, Requeue, TypeError) as e:
            log.debug("certificates alone: %s", e)

    async def _keep_previous_claim(self, desired: dict) -> None:
        """Fault operator.staleStorageVolume: the claim the running Deployment stores on stays mounted
        (as volume registry-storage-previous) when the storage changes."""
        existing = await self._get(path("apps/v1", "deployments", C.NAMESPACE, C.DEPLOYMENT_NAME))
        pod = desired["spec"]["template"]["spec"]
        new_claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if v.get("persistentVolumeClaim")}
        for v in (((existing or {}).get("spec") or {}).get("template") or {}).get("spec", {}).get("volumes") or []:
            claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
            if claim and claim not in new_claims and v["name"] in ("registry-storage", C.STALE_VOLUME):
                pod["volumes"].append({"name": C.STALE_VOLUME, "persistentVolumeClaim": {"claimName": claim}})
                pod["containers"][0].setdefault("volumeMounts", []).append(
                    {"name": C.STALE_VOLUME, "mountPath": "/registry-previous"})
                break

    async def _certificates(self, storage_ca: Optional[str] = None) -> dict:
        ca = await self._get(path("v1", "configmaps", C.NAMESPACE, C.SERVICE_CA_CONFIGMAP))
        service_ca = ((ca or {}).get("data") or {}).get("service-ca.crt")
        additional = {}
        image = await self._get(IMAGE_CONFIG_P)
        name = (((image or {}).get("spec") or {}).get("additionalTrustedCA") or {}).get("name")
        if name:
            cm = await self._get(path("v1", "configmaps", "openshift-config", name))
            additional = dict((cm or {}).get("data") or {})
        return certificates_configmap(service_ca, additional, storage_ca)

    async def _operator_routes(self) -> list:
        try:
            lst = await self.client.list(path("route.openshift.io/v1", "routes", C.NAMESPACE))
        except ApiError as e:
            if e.status == 404:
                return []
            raise
        return [r for r in lst.get("items") or []
                if C.OWNER_ANNOTATION in ((r.get("metadata") or {}).get("annotations") or {})]

    async def ensure_node_ca(self) -> Optional[dict]:
        try:
            return await self.ensure(node_ca_daemonset())
        except Requeue:
            return await self._get(path("apps/v1", "daemonsets", C.NAMESPACE, C.NODE_CA))

    # --- Removed ----------------------------------------------------------------------------------

    async def remove_resources(self, cr: dict) -> None:
        ns = C.NAMESPACE
        if self._fault(C.FAULT_LEAVE_OBJECTS_ON_REMOVED):
            # Fault (issue 9): only the Deployment goes; Service, Secret, SA, PDB and routes stay.
            await self._delete(path("apps/v1", "deployments", ns, C.DEPLOYMENT_NAME))
            cr.setdefault("status", {})["storage"] = {}
            return
        for api, plural, name in (
                ("apps/v1", "deployments", C.DEPLOYMENT_NAME), ("v1", "services", C.SERVICE_NAME),
                ("v1", "secrets", C.PRIVATE_CONFIG_SECRET), ("v1", "serviceaccounts", C.SERVICE_ACCOUNT),
                ("policy/v1", "poddisruptionbudgets", C.PDB_NAME)):
            await self._delete(path(api, plural, ns, name))
        routes = await self._operator_routes()
        if routes:
            # The real ImageConfigController follows the Service and the routes through their informers,
            # so the Service's deletion reaches images.config before the routes' (the real 4.18 operator:
            # two status writes about a second apart, each a control-plane rollout).
            await self._write_image_config("", route_hosts(routes))
        for r in routes:
            await self._delete(path("route.openshift.io/v1", "routes", ns, r["metadata"]["name"]))
        status = cr.setdefault("status", {})
        driver = driver_for_status(cr)
        if driver is not None:
            await driver.remove_storage(cr, self._storage_context())
        status["storage"] = {}

    # --- ClusterOperator and image config ---------------------------------------------------------

    async def sync_cluster_operator(self, cr: dict, deploy: Optional[dict]) -> None:
        co = await self._get(CO_P)
        if co is None:
            try:
                co = await self.client.create(path("config.openshift.io/v1", "clusteroperators"), {
                    "apiVersion": "config.openshift.io/v1", "kind": "ClusterOperator",
                    "metadata": {"name": C.CLUSTER_OPERATOR}, "spec": {}})
            except ApiError as e:
                if e.status == 409:
                    raise Requeue("clusteroperator appeared meanwhile") from e
                raise
        pruner = await self._get(PRUNER_P)
        pruner_conditions = ((pruner or {}).get("status") or {}).get("conditions") or []
        old = co.get("status") or {}
        new = copy.deepcopy(old)
        conds = cr["status"]["conditions"]
        new["conditions"] = cluster_operator_conditions(conds, pruner_conditions, old.get("conditions") or [])
        if self._fault(C.FAULT_CO_ALWAYS_AVAILABLE):
            # Fault (issue 9): the ClusterOperator says Available=True/Ready whatever the Config says.
            for c in new["conditions"]:
                if c.get("type") == "Available" and (c.get("status"), c.get("reason")) != ("True", "Ready"):
                    c.update(status="True", reason="Ready", message="Available: The registry is ready")
        new["relatedObjects"] = copy.deepcopy(RELATED_OBJECTS)
        state = cr["spec"].get("managementState")
        version = None
        if state in ("Removed", "Unmanaged"):
            version = C.VERSION
        elif deploy is not None:
            a, p = get_condition(conds, "Available"), get_condition(conds, "Progressing")
            if a and a["reason"] == "Ready" and p and p["reason"] == "Ready":
                version = (deploy["metadata"].get("annotations") or {}).get(C.VERSION_ANNOTATION)
        if version:
            new["versions"] = [{"name": "operator", "version": version}]
        if _stripped_status(new) != _stripped_status(old):
            body = dict(co, status=new)
            try:
                await self.client.replace(path("config.openshift.io/v1", "clusteroperators", None,
                                               C.CLUSTER_OPERATOR, "status"), body)
            except ApiError as e:
                if e.status in (404, 409):
                    raise Requeue(f"clusteroperator status: {e}") from e
                raise

    async def sync_image_config(self, state: str, deploy: Optional[dict], op_routes: list) -> None:
        if state == "Managed" and await self._get(path("v1", "services", C.NAMESPACE, C.SERVICE_NAME)):
            await self._write_image_config(C.INTERNAL_HOSTNAME, route_hosts(op_routes))
        else:
            await self._write_image_config("", [])

    async def _write_image_config(self, internal: str, external: list) -> None:
        """images.config.openshift.io/cluster status: the registry's host names, written when they change."""
        if self._fault(C.FAULT_STALE_IMAGE_CONFIG):
            return      # fault operator.staleImageConfig (issue 9): the control plane is never told
        image = await self._get(IMAGE_CONFIG_P)
        if image is None:
            return
        status = image.get("status") or {}
        if status.get("internalRegistryHostname", "") == internal and \
                (status.get("externalRegistryHostnames") or []) == external:
            return
        new = dict(status, internalRegistryHostname=internal, externalRegistryHostnames=external)
        try:
            await self.client.replace(path("config.openshift.io/v1", "images", None, "cluster", "status"),
                                      dict(image, status=new))
        except ApiError as e:
            if e.status in (404, 409):
                raise Requeue(f"image config status: {e}") from e
            raise


__all__ = ["ImageRegistryOperator", "Requeue"]
