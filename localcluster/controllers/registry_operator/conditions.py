"""Conditions: the Config condition matrix (operator-facts.md §6.2, 4.22+/master variant), the node-ca
conditions, and the ClusterOperator aggregation (§6.3). Pure functions over plain dicts."""
from __future__ import annotations

import datetime
from typing import Optional

from .errors import SyncError

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"


def now_str(now: Optional[datetime.datetime] = None) -> str:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime.datetime:
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def get_condition(conditions: list, type_: str) -> Optional[dict]:
    for c in conditions or []:
        if c.get("type") == type_:
            return c
    return None


def set_condition(conditions: list, type_: str, status: str, reason: str, message: str,
                  now: Optional[str] = None) -> None:
    """Set a condition in place; lastTransitionTime changes only when the status changes."""
    now = now or now_str()
    cur = get_condition(conditions, type_)
    if cur is None:
        conditions.append({"type": type_, "status": status, "lastTransitionTime": now,
                           "reason": reason, "message": message})
        return
    if cur.get("status") != status:
        cur["lastTransitionTime"] = now
    cur["status"] = status
    cur["reason"] = reason
    cur["message"] = message


# --- the deployment as the operator sees it -------------------------------------------------------

def _deploy_condition(deploy: dict, type_: str) -> Optional[dict]:
    return get_condition((deploy.get("status") or {}).get("conditions") or [], type_)


def deployment_complete(deploy: dict) -> bool:
    """4.22+/master rule: the Deployment's Progressing condition is True/NewReplicaSetAvailable.
    Also requires the controller to have observed the current generation, so a stale status
    right after an update is not taken for a finished rollout."""
    st = deploy.get("status") or {}
    gen = (deploy.get("metadata") or {}).get("generation")
    if gen is not None and int(st.get("observedGeneration") or 0) < int(gen):
        return False
    cond = _deploy_condition(deploy, "Progressing")
    return bool(cond and cond.get("status") == TRUE and cond.get("reason") == "NewReplicaSetAvailable")


def deployment_complete_counts(deploy: dict) -> bool:
    """release-4.10 ... 4.21 rule (isDeploymentStatusComplete): updated == status.replicas == available
    == spec.replicas (default 1) and the controller observed the generation (operator-facts §6.4)."""
    st = deploy.get("status") or {}
    want = int(((deploy.get("spec") or {}).get("replicas", 1)))
    gen = int((deploy.get("metadata") or {}).get("generation") or 0)
    return (int(st.get("updatedReplicas") or 0) == want and int(st.get("replicas") or 0) == want
            and int(st.get("availableReplicas") or 0) == want and int(st.get("observedGeneration") or 0) >= gen)


def _deleting(obj: dict) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def config_conditions(state: str, deploy: Optional[dict], apply_error: Optional[SyncError],
                      previous: list, grace_seconds: float, routes: tuple = (),
                      now: Optional[datetime.datetime] = None, release: tuple = (99, 0)) -> list:
    """The Config's Available/Progressing/Degraded/Removed after a sync.

    state: spec.managementState; deploy: the Deployment or None; apply_error: the sync's error;
    previous: the current condition list (copied, not modified); routes: the operator's routes;
    release: (major, minor) of the emulated OpenShift release: before 4.22 "complete" is the counts rule
    and Degraded follows release-4.21's if/else (CIRO pkg/operator/status.go at release-4.18: no
    ProgressDeadlineExceeded while Available is not True; RouteDegraded only once complete).
    Returns the new full condition list (other conditions kept as they are)."""
    legacy = tuple(release) < (4, 22)
    complete = deployment_complete_counts if legacy else deployment_complete
    now = now or datetime.datetime.now(datetime.timezone.utc)
    ts = now_str(now)
    conds = [dict(c) for c in previous or []]
    permanent = apply_error is not None and apply_error.permanent

    # Available
    if state == "Unmanaged":
        avail = (TRUE, "Unmanaged", "The registry configuration is set to unmanaged mode")
    elif deploy is None:
        if permanent:
            avail = (FALSE, apply_error.reason, f"Error: {apply_error}")
        elif state == "Removed":
            avail = (TRUE, "Removed", "The registry is removed")
        else:
            avail = (FALSE, "DeploymentNotFound", "The deployment does not exist")
    elif _deleting(deploy):
        avail = (FALSE, "DeploymentDeleted", "The deployment is being deleted")
    else:
        st = deploy.get("status") or {}
        available = int(st.get("availableReplicas") or 0)
        if available == 0:
            avail = (FALSE, "NoReplicasAvailable", "The deployment does not have available replicas")
        elif (not complete(deploy)) if legacy else available != int(st.get("replicas") or 0):
            avail = (TRUE, "MinimumAvailability", "The registry has minimum availability")
        else:
            avail = (TRUE, "Ready", "The registry is ready")
    set_condition(conds, "Available", *avail, now=ts)

    # Progressing
    if state == "Unmanaged":
        prog = (FALSE, "Unmanaged", "The registry configuration is set to unmanaged mode")
    elif state == "Removed":
        if deploy is not None:
            prog = (TRUE, "DeletingDeployment", "The deployment is being removed")
        else:
            prog = (FALSE, "Removed", "All registry resources are removed")
    elif apply_error is not None:
        prog = (FALSE if permanent else TRUE, "Error", f"Unable to apply resources: {apply_error}")
    elif deploy is None:
        prog = (TRUE, "WaitingForDeployment",
                "All resources are successfully applied, but the deployment does not exist")
    elif _deleting(deploy):
        prog = (TRUE, "FinalizingDeployment", "The deployment is being deleted")
    elif not complete(deploy):
        prog = (TRUE, "DeploymentNotCompleted", "The deployment has not completed")
    else:
        prog = (FALSE, "Ready", "The registry is ready")
    set_condition(conds, "Progressing", *prog, now=ts)

    # Degraded
    available = get_condition(conds, "Available")
    if state == "Unmanaged":
        deg = (FALSE, "Unmanaged", "The registry configuration is set to unmanaged mode")
    elif state == "Removed":
        deg = (FALSE, "Removed", "The registry is removed")
    elif permanent:
        deg = (TRUE, apply_error.reason, f"Error: {apply_error}")
    elif legacy:
        pd = _deploy_condition(deploy, "Progressing") if deploy is not None else None
        bad_route = _route_not_admitted(routes)
        if available["status"] != TRUE:
            if (now - parse_time(available["lastTransitionTime"])).total_seconds() > grace_seconds:
                deg = (TRUE, "Unavailable", available["message"])
            else:
                deg = (FALSE, "", "")
        elif deploy is not None and not complete(deploy):
            if pd and pd.get("reason") == "ProgressDeadlineExceeded":
                deg = (TRUE, "ProgressDeadlineExceeded",
                       f"Registry deployment has timed out progressing: {pd.get('message', '')}")
            else:
                deg = (FALSE, "", "")
        elif bad_route:
            deg = (TRUE, "RouteDegraded", bad_route)
        else:
            deg = (FALSE, "", "")
    elif available["status"] != TRUE and \
            (now - parse_time(available["lastTransitionTime"])).total_seconds() > grace_seconds:
        deg = (TRUE, "Unavailable", available["message"])
    else:
        pd = _deploy_condition(deploy, "Progressing") if deploy is not None else None
        bad_route = _route_not_admitted(routes)
        if pd and pd.get("reason") == "ProgressDeadlineExceeded":
            deg = (TRUE, "ProgressDeadlineExceeded",
                   f"Registry deployment has timed out progressing: {pd.get('message', '')}")
        elif bad_route:
            deg = (TRUE, "RouteDegraded", bad_route)
        else:
            deg = (FALSE, "", "")
    set_condition(conds, "Degraded", *deg, now=ts)

    # Removed
    if state == "Removed":
        set_condition(conds, "Removed", TRUE, "Removed", "The registry is removed", now=ts)
    else:
        set_condition(conds, "Removed", FALSE, "", "", now=ts)
    return conds


def degraded_due_at(conditions: list, grace_seconds: float) -> Optional[datetime.datetime]:
    """When the grace rule would turn Degraded True, if it has not yet (for a delayed resync)."""
    a = get_condition(conditions, "Available")
    d = get_condition(conditions, "Degraded")
    if not a or a.get("status") == TRUE or (d and d.get("status") == TRUE):
        return None
    return parse_time(a["lastTransitionTime"]) + datetime.timedelta(seconds=grace_seconds)


def _route_not_admitted(routes) -> Optional[str]:
    for r in routes or ():
        for ing in (r.get("status") or {}).get("ingress") or []:
            adm = get_condition(ing.get("conditions") or [], "Admitted")
            if adm is not None and adm.get("status") != TRUE:
                return (f"route {r['metadata']['name']} (host {ing.get('host', '')}, router "
                        f"{ing.get('routerName', '')}) not admitted: {adm.get('message', '')}")
    return None


# Conditions of the operator's other controllers, seen on real clusters (e.g. the vSphere 4.8
# must-gather in ../shared/realdata): False / AsExpected while they meet no error.
OTHER_CONTROLLERS_DEGRADED = ("ImageConfigControllerDegraded", "ImageRegistryCertificatesControllerDegraded",
                              "NodeCADaemonControllerDegraded",
                              # the Azure Stack Hub controller runs on every platform and reports
                              # False/AsExpected elsewhere (real operator 4.16-main, issue 8)
                              "AzureStackCloudControllerDegraded")


def node_ca_conditions(daemonset: Optional[dict]) -> list:
    """[(type, status, reason, message)] for the node-ca DaemonSet."""
    if daemonset is None:
        return [("NodeCADaemonAvailable", FALSE, "NotFound", "The daemon set node-ca does not exist"),
                ("NodeCADaemonProgressing", TRUE, "NotFound", "The daemon set node-ca does not exist")]
    st = daemonset.get("status") or {}
    out = []
    if int(st.get("numberAvailable") or 0) > 0:
        out.append(("NodeCADaemonAvailable", TRUE, "AsExpected",
                    "The daemon set node-ca has available replicas"))
    else:
        out.append(("NodeCADaemonAvailable", FALSE, "NoAvailableReplicas",
                    "The daemon set node-ca does not have available replicas"))
    gen = int((daemonset.get("metadata") or {}).get("generation") or 0)
    if int(st.get("observedGeneration") or 0) < gen:
        # CIRO pkg/operator/nodecadaemon.go (release-4.12 ... 4.21): reasons Progressing / Unavailable
        out.append(("NodeCADaemonProgressing", TRUE, "Progressing", "The daemon set node-ca is updating node pods"))
    elif int(st.get("numberUnavailable") or 0) > 0 or \
            int(st.get("updatedNumberScheduled") or 0) < int(st.get("desiredNumberScheduled") or 0):
        out.append(("NodeCADaemonProgressing", TRUE, "Unavailable", "The daemon set node-ca is deploying node pods"))
    else:
        out.append(("NodeCADaemonProgressing", FALSE, "AsExpected", "The daemon set node-ca is deployed"))
    return out


# --- ClusterOperator ------------------------------------------------------------------------------

NORMAL = {"Available": TRUE, "Progressing": FALSE, "Degraded": FALSE}
OPPOSITE = {"Available": FALSE, "Progressing": TRUE, "Degraded": TRUE}


def aggregate(type_: str, config_conditions_: list, pruner_conditions: list = ()) -> dict:
    """One ClusterOperator condition from every Config condition whose type ends with `type_`
    (plus the ImagePruner's, prefixed `ImagePruner`)."""
    inputs = [c for c in config_conditions_ or [] if c.get("type", "").endswith(type_)]
    inputs += [dict(c, type="ImagePruner" + c["type"]) for c in pruner_conditions or []
               if c.get("type", "").endswith(type_)]
    normal = NORMAL[type_]
    status = normal
    if any(c.get("status") == OPPOSITE[type_] for c in inputs):
        status = OPPOSITE[type_]
    elif any(c.get("status") != normal for c in inputs):
        status = UNKNOWN
    reasons = sorted(c["type"][: -len(type_)] + c["reason"] for c in inputs
                     if c.get("reason") and c.get("reason") != "AsExpected")
    reason = "::".join(reasons)
    if not reason and status == normal:
        reason = "AsExpected"
    message = "\n".join(f"{c['type']}: {line}" for c in inputs if c.get("message")
                        for line in c["message"].split("\n"))
    times = sorted(c["lastTransitionTime"] for c in inputs if c.get("lastTransitionTime"))
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": times[-1] if times else now_str()}


def cluster_operator_conditions(config_conditions_: list, pruner_conditions: list, previous: list) -> list:
    """Available, Progressing, Degraded for the ClusterOperator. A condition keeps its previous
    lastTransitionTime while its status is unchanged."""
    out = []
    for t in ("Available", "Progressing", "Degraded"):
        c = aggregate(t, config_conditions_, pruner_conditions)
        prev = get_condition(previous, t)
        if prev is not None and prev.get("status") == c["status"] and prev.get("lastTransitionTime"):
            c["lastTransitionTime"] = prev["lastTransitionTime"]
        out.append(c)
    # Conditions written by others (e.g. Upgradeable) are kept.
    out += [dict(c) for c in previous or [] if c.get("type") not in NORMAL]
    return out


RELATED_OBJECTS = [
    {"group": "imageregistry.operator.openshift.io", "resource": "configs", "name": "cluster"},
    {"group": "imageregistry.operator.openshift.io", "resource": "imagepruners", "name": "cluster"},
    {"group": "rbac.authorization.k8s.io", "resource": "clusterroles", "name": "system:registry"},
    {"group": "rbac.authorization.k8s.io", "resource": "clusterrolebindings", "name": "registry-registry-role"},
    {"group": "rbac.authorization.k8s.io", "resource": "clusterrolebindings",
     "name": "openshift-image-registry-pruner"},
    {"group": "", "resource": "namespaces", "name": "openshift-image-registry"},
]
