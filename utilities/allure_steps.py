"""The procedure's steps as Allure steps, without touching the modules that define them.

`install(context)` replaces, in their modules, the functions named in `STEPS` (the configuration steps of
`utilities/registry_steps.py`, the waits of `utilities/waits.py`, the registry client's push and pull)
by wrappers that open an Allure step titled after the call, with the parameters `backend` (the backend
being certified, from `context.backend()`), `expected` (what the step must reach) and the call's own
key arguments. A step that is a context manager becomes two steps: the set-up (its `__enter__`) and
`undo: ...` (its `__exit__`), so nothing stays open while the checks run. Callers that look the
function up in its module at call time (all of the suite's) see the wrapper; `uninstall()` puts the
originals back.

Every step's duration is recorded (`context.record(...)`), and when a step fails the
`context.on_failure(cluster, exc)` callback runs once per exception (it attaches the evidence) before
the set-up is undone, i.e. while the cluster still shows why.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import inspect
import time
import uuid
from typing import Any, Callable

from allure_commons import plugin_manager
from allure_commons.utils import represent

_MARK = "_registry_conformance_evidence"


@dataclasses.dataclass(frozen=True)
class Step:
    module: str
    name: str                  # function (or Class.method) in that module
    title: str                 # str.format over the call's arguments (and `backend_id`)
    expected: str
    params: tuple = ()         # argument names shown as step parameters
    context_manager: bool = False
    evidence: bool = True      # attach the cluster's state when it fails


RS, W, RC = "utilities.registry_steps", "utilities.waits", "utilities.registry_client"
STEPS: tuple[Step, ...] = (
    Step(RS, "configure_backend", "configure the {backend.id} backend",
         "its prerequisites exist, managementState Managed with its storage, the registry rolled out",
         context_manager=True),
    Step(RS, "prepare_backend", "configure the {backend.id} backend",
         "its prerequisites exist (claim; bucket claim, credentials, CA bundle) and its spec fields are known"),
    Step(RS, "management_state", "managementState: {state}",
         "the operator observes the spec (Removed: the registry and its Deployment are removed)", ("state",),
         context_manager=True),
    Step(RS, "storage", "storage: {backend.id}", "the registry rolls out on this storage",
         context_manager=True),
    Step(RS, "default_route", "defaultRoute: true", "route default-route is admitted with a host",
         context_manager=True),
    Step(RS, "claim", "PVC {namespace}/{name} ({access_mode}, {size})", "the claim is created, labelled as the suite's",
         ("name", "access_mode", "size", "storage_class"), context_manager=True),
    Step(RS, "object_bucket_claim", "ObjectBucketClaim {name} ({storage_class})",
         "the claim is Bound with a bucket and its keys", ("name", "storage_class"), context_manager=True),
    Step(RS, "s3_credentials", "secret image-registry-private-configuration-user",
         "the S3 keys of the bucket claim are given to the registry", context_manager=True, evidence=False),
    Step(RS, "trusted_ca", "trustedCA configmap openshift-config/{name}", "the CA bundle of the S3 endpoint",
         ("name",), context_manager=True, evidence=False),
    Step(RS, "temporary_namespace", "temporary namespace {prefix}*", "a labelled namespace to push into",
         context_manager=True, evidence=False),
    Step(RS, "replica_client", "port-forward to pod {pod}", "the pod answers with a certificate of the service CA",
         ("pod",), context_manager=True),
    Step(RS, "restart_registry_pods", "delete the registry pods", "replacements roll out"),
    Step(W, "wait_for_rollout", "wait for the registry rollout",
         "Deployment complete (updated == ready == available == spec.replicas), Config Available=True/Ready, "
         "Progressing=False; fails at once on the cluster's stated cause"),
    Step(W, "wait_for_pods_replaced", "wait for the registry pods to be replaced",
         "none of the old pods remains and the rollout is complete"),
    Step(W, "wait_for_conditions", "wait for Config conditions", "the synced Config has these conditions",
         ("expected",)),
    Step(W, "wait_for_clusteroperator", "wait for ClusterOperator {name}", "the ClusterOperator has these conditions",
         ("expected",)),
    Step(W, "wait_for_progressing_error", "wait for the operator to refuse the storage",
         "Progressing=True with this message", ("expected",)),
    Step(W, "wait_for_route_admitted", "wait for route {namespace}/{name}", "Admitted=True with a host"),
    Step(W, "wait_for_obc_bound", "wait for ObjectBucketClaim {namespace}/{name}", "Bound with a bucket name"),
    Step(RC, "RegistryClient.push_image", "push {repo}:{tag}",
         "every blob and the manifest accepted, with the digests the registry returns verified",
         ("repo", "tag"), evidence=False),
    Step(RC, "RegistryClient.pull_image", "pull {repo}:{reference}",
         "the manifest and every blob come back with the digests pushed", ("repo", "reference"), evidence=False),
)


class Context:
    """What the wrappers ask of their host (the pytest plugin): override what is needed."""

    def backend(self) -> str | None:
        return None

    def record(self, step: Step, title: str, backend: str | None, duration: float, status: str) -> None:
        pass

    def on_failure(self, cluster, exc: BaseException) -> None:
        pass


_installed: list[tuple[Any, str, Any]] = []     # (owner, attribute, original)


def _owner_and_attr(step: Step):
    owner: Any = importlib.import_module(step.module)
    *path, attr = step.name.split(".")
    for p in path:
        owner = getattr(owner, p)
    return owner, attr


def _bound(fn, args, kwargs) -> dict:
    try:
        b = inspect.signature(fn).bind_partial(*args, **kwargs)
        b.apply_defaults()
        return dict(b.arguments)
    except TypeError:
        return {}


class _SafeFormat(dict):
    def __missing__(self, key):
        return "?"


def _title(step: Step, arguments: dict) -> str:
    try:
        return step.title.format_map(_SafeFormat(arguments))
    except (AttributeError, IndexError, KeyError, ValueError):
        return step.title.split("{")[0].strip() or step.name


def _find_cluster(arguments: dict):
    from utilities.kube import Cluster
    for v in arguments.values():
        if isinstance(v, Cluster):
            return v
    return None


class _Running:
    """One Allure step around a block; records its duration and runs the failure callback."""

    def __init__(self, ctx: Context, step: Step, title: str, params: dict, cluster, *, undo: bool = False):
        self.ctx, self.step, self.title, self.params, self.cluster = ctx, step, title, params, cluster
        self.undo = undo
        self.uuid = str(uuid.uuid4())

    def __enter__(self):
        self.t0 = time.monotonic()
        plugin_manager.hook.start_step(uuid=self.uuid, title=self.title, params=self.params)
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None and self.step.evidence and self.cluster is not None \
                and not isinstance(exc, (KeyboardInterrupt, GeneratorExit)) \
                and not getattr(exc, _MARK, False) and exc_type.__name__ not in ("Skipped", "XFailed"):
            try:
                setattr(exc, _MARK, True)
            except (AttributeError, TypeError):
                pass
            try:
                self.ctx.on_failure(self.cluster, exc)
            except Exception:  # noqa: BLE001 - never hide the failure itself
                pass
        plugin_manager.hook.stop_step(uuid=self.uuid, title=self.title, exc_type=exc_type, exc_val=exc, exc_tb=tb)
        status = "passed" if exc is None else ("skipped" if exc_type.__name__ == "Skipped" else "failed")
        try:
            self.ctx.record(self.step, self.title, self.params.get("backend"), time.monotonic() - self.t0, status)
        except Exception:  # noqa: BLE001
            pass
        return False


class _StepCM:
    """A context manager seen as two steps: set-up and undo."""

    def __init__(self, inner, running: Callable[..., _Running]):
        self._inner, self._running = inner, running

    def __enter__(self):
        with self._running():
            return self._inner.__enter__()

    def __exit__(self, exc_type, exc, tb):
        with self._running(undo=True):
            return self._inner.__exit__(exc_type, exc, tb)


def _wrap(ctx: Context, step: Step, original):
    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        arguments = _bound(original, args, kwargs)
        backend = ctx.backend()
        arguments.setdefault("backend_id", backend)
        title = _title(step, arguments)
        params = {"backend": backend or "-", "expected": step.expected}
        for p in step.params:
            if arguments.get(p) is not None:
                params[p] = represent(arguments[p]) if not isinstance(arguments[p], str) else arguments[p]
        cluster = _find_cluster(arguments)

        def running(undo=False):
            return _Running(ctx, step, ("undo: " if undo else "") + title,
                            dict(params, expected=f"what '{title}' changed is put back") if undo else params,
                            cluster, undo=undo)

        if step.context_manager:
            return _StepCM(original(*args, **kwargs), running)
        with running():
            return original(*args, **kwargs)

    wrapper.__wrapped_step__ = step
    return wrapper


def install(ctx: Context) -> None:
    """Wrap every step of STEPS (idempotent: a second install replaces the first)."""
    uninstall()
    for step in STEPS:
        owner, attr = _owner_and_attr(step)
        original = inspect.getattr_static(owner, attr)
        if isinstance(original, (staticmethod, classmethod)):
            continue
        _installed.append((owner, attr, original))
        setattr(owner, attr, _wrap(ctx, step, original))


def uninstall() -> None:
    while _installed:
        owner, attr, original = _installed.pop()
        setattr(owner, attr, original)


def installed() -> bool:
    return bool(_installed)


@contextlib.contextmanager
def installed_for(ctx: Context):
    install(ctx)
    try:
        yield
    finally:
        uninstall()
