"""Unit tests: the Config condition matrix (operator-facts.md §6.2) and the ClusterOperator
aggregation (§6.3)."""
import datetime

import pytest

from localcluster.controllers.registry_operator.conditions import (
    aggregate, cluster_operator_conditions, config_conditions, degraded_due_at, get_condition,
    node_ca_conditions, now_str, set_condition)
from localcluster.controllers.registry_operator.errors import (
    SyncError, storage_not_configured, verification_failed)

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
GRACE = 5.0


def deploy(available=1, replicas=1, complete=True, deleting=False, deadline=False, generation=1):
    d = {"metadata": {"name": "image-registry", "generation": generation},
         "status": {"replicas": replicas, "availableReplicas": available, "readyReplicas": available,
                    "updatedReplicas": replicas, "observedGeneration": generation, "conditions": []}}
    if complete:
        d["status"]["conditions"].append({"type": "Progressing", "status": "True",
                                          "reason": "NewReplicaSetAvailable", "message": "done"})
    elif deadline:
        d["status"]["conditions"].append({"type": "Progressing", "status": "False",
                                          "reason": "ProgressDeadlineExceeded",
                                          "message": 'ReplicaSet "image-registry-1" has timed out progressing.'})
    else:
        d["status"]["conditions"].append({"type": "Progressing", "status": "True",
                                          "reason": "ReplicaSetUpdated", "message": "progressing"})
    if deleting:
        d["metadata"]["deletionTimestamp"] = "2026-01-01T11:00:00Z"
    return d


def run(state, dep, err=None, previous=(), now=NOW, routes=()):
    conds = config_conditions(state, dep, err, list(previous), GRACE, routes=routes, now=now)
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in conds}, conds


def test_unmanaged():
    c, _ = run("Unmanaged", deploy())
    msg = "The registry configuration is set to unmanaged mode"
    assert c["Available"] == ("True", "Unmanaged", msg)
    assert c["Progressing"] == ("False", "Unmanaged", msg)
    assert c["Degraded"] == ("False", "Unmanaged", msg)
    assert c["Removed"][0] == "False"


def test_removed_deployment_gone():
    c, _ = run("Removed", None)
    assert c["Available"] == ("True", "Removed", "The registry is removed")
    assert c["Progressing"] == ("False", "Removed", "All registry resources are removed")
    assert c["Degraded"] == ("False", "Removed", "The registry is removed")
    assert c["Removed"] == ("True", "Removed", "The registry is removed")


def test_removed_deployment_still_exists():
    c, _ = run("Removed", deploy(deleting=True))
    assert c["Available"] == ("False", "DeploymentDeleted", "The deployment is being deleted")
    assert c["Progressing"] == ("True", "DeletingDeployment", "The deployment is being removed")
    assert c["Degraded"][:2] == ("False", "Removed")
    assert c["Removed"][0] == "True"


def test_managed_storage_not_configured():
    c, _ = run("Managed", None, storage_not_configured())
    assert c["Available"] == ("False", "StorageNotConfigured", "Error: storage backend not configured")
    assert c["Progressing"] == ("False", "Error", "Unable to apply resources: storage backend not configured")
    assert c["Degraded"] == ("True", "StorageNotConfigured", "Error: storage backend not configured")
    assert c["Removed"][0] == "False"


def test_managed_negative_replicas():
    err = verification_failed("replicas must be greater than or equal to 0")
    c, _ = run("Managed", None, err)
    text = "unable to complete resource: replicas must be greater than or equal to 0"
    assert c["Available"] == ("False", "VerificationFailed", f"Error: {text}")
    assert c["Progressing"] == ("False", "Error", f"Unable to apply resources: {text}")
    assert c["Degraded"] == ("True", "VerificationFailed", f"Error: {text}")


RWO_ERR = SyncError("unable to sync storage configuration: cannot use ReadWriteOnce access mode "
                    "with more than one replica of the image registry")


def test_managed_transient_error_with_working_deployment():
    c, _ = run("Managed", deploy(), RWO_ERR)
    assert c["Available"] == ("True", "Ready", "The registry is ready")
    assert c["Progressing"] == ("True", "Error", f"Unable to apply resources: {RWO_ERR}")
    assert c["Degraded"][0] == "False"


def test_managed_transient_error_without_deployment_and_grace():
    c, conds = run("Managed", None, RWO_ERR)
    assert c["Available"] == ("False", "DeploymentNotFound", "The deployment does not exist")
    assert c["Progressing"][:2] == ("True", "Error")
    assert c["Degraded"][0] == "False"           # Available just became False
    later = NOW + datetime.timedelta(seconds=GRACE + 1)
    c, _ = run("Managed", None, RWO_ERR, previous=conds, now=later)
    assert c["Degraded"] == ("True", "Unavailable", "The deployment does not exist")


def test_managed_applied_deployment_missing():
    c, _ = run("Managed", None)
    assert c["Available"] == ("False", "DeploymentNotFound", "The deployment does not exist")
    assert c["Progressing"] == ("True", "WaitingForDeployment",
                                "All resources are successfully applied, but the deployment does not exist")


def test_deployment_being_deleted():
    c, _ = run("Managed", deploy(deleting=True))
    assert c["Available"] == ("False", "DeploymentDeleted", "The deployment is being deleted")
    assert c["Progressing"] == ("True", "FinalizingDeployment", "The deployment is being deleted")


def test_no_available_replicas_then_degraded_after_grace():
    c, conds = run("Managed", deploy(available=0, complete=False))
    assert c["Available"] == ("False", "NoReplicasAvailable", "The deployment does not have available replicas")
    assert c["Progressing"] == ("True", "DeploymentNotCompleted", "The deployment has not completed")
    assert c["Degraded"][0] == "False"
    assert degraded_due_at(conds, GRACE) == NOW + datetime.timedelta(seconds=GRACE)
    c, conds2 = run("Managed", deploy(available=0, complete=False), previous=conds,
                    now=NOW + datetime.timedelta(seconds=GRACE - 1))
    assert c["Degraded"][0] == "False"
    c, conds3 = run("Managed", deploy(available=0, complete=False), previous=conds2,
                    now=NOW + datetime.timedelta(seconds=GRACE + 1))
    assert c["Degraded"] == ("True", "Unavailable", "The deployment does not have available replicas")
    assert degraded_due_at(conds3, GRACE) is None


def test_rollout_in_progress_some_available():
    c, _ = run("Managed", deploy(available=1, replicas=2, complete=False))
    assert c["Available"] == ("True", "MinimumAvailability", "The registry has minimum availability")
    assert c["Progressing"] == ("True", "DeploymentNotCompleted", "The deployment has not completed")
    assert c["Degraded"][0] == "False"


def test_progress_deadline_exceeded():
    c, _ = run("Managed", deploy(available=1, replicas=2, complete=False, deadline=True))
    assert c["Degraded"] == ("True", "ProgressDeadlineExceeded",
                             'Registry deployment has timed out progressing: ReplicaSet "image-registry-1" '
                             "has timed out progressing.")


def test_unavailable_takes_precedence_over_deadline():
    d = deploy(available=0, complete=False, deadline=True)
    _, conds = run("Managed", d)
    c, _ = run("Managed", d, previous=conds, now=NOW + datetime.timedelta(seconds=GRACE + 1))
    assert c["Degraded"][1] == "Unavailable"


def test_healthy():
    c, _ = run("Managed", deploy())
    assert c["Available"] == ("True", "Ready", "The registry is ready")
    assert c["Progressing"] == ("False", "Ready", "The registry is ready")
    assert c["Degraded"] == ("False", "", "")
    assert c["Removed"] == ("False", "", "")


def test_stale_deployment_status_is_not_complete():
    d = deploy(generation=2)
    d["status"]["observedGeneration"] = 1
    c, _ = run("Managed", d)
    assert c["Progressing"][1] == "DeploymentNotCompleted"


def test_route_not_admitted_degrades():
    route = {"metadata": {"name": "default-route"}, "status": {"ingress": [
        {"host": "h.example", "routerName": "default",
         "conditions": [{"type": "Admitted", "status": "False", "message": "host in use"}]}]}}
    c, _ = run("Managed", deploy(), routes=(route,))
    assert c["Degraded"] == ("True", "RouteDegraded",
                             "route default-route (host h.example, router default) not admitted: host in use")


def test_last_transition_time_changes_only_with_status():
    _, conds = run("Managed", deploy(available=1, replicas=2, complete=False))
    t0 = get_condition(conds, "Available")["lastTransitionTime"]
    later = NOW + datetime.timedelta(seconds=30)
    _, conds2 = run("Managed", deploy(), previous=conds, now=later)
    a = get_condition(conds2, "Available")
    assert a["reason"] == "Ready" and a["lastTransitionTime"] == t0     # True -> True
    p = get_condition(conds2, "Progressing")
    assert p["status"] == "False" and p["lastTransitionTime"] == now_str(later)


def test_other_conditions_are_kept():
    prev = []
    set_condition(prev, "StorageExists", "True", "PVC Exists", "")
    _, conds = run("Managed", deploy(), previous=prev)
    assert get_condition(conds, "StorageExists")["reason"] == "PVC Exists"


# --- node-ca ---------------------------------------------------------------------------------------

def test_node_ca_conditions():
    ds = {"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "numberAvailable": 6,
                                                    "desiredNumberScheduled": 6, "updatedNumberScheduled": 6}}
    assert node_ca_conditions(ds) == [
        ("NodeCADaemonAvailable", "True", "AsExpected", "The daemon set node-ca has available replicas"),
        ("NodeCADaemonProgressing", "False", "AsExpected", "The daemon set node-ca is deployed")]
    ds["status"]["numberAvailable"] = 0
    ds["status"]["numberUnavailable"] = 6
    out = dict((t, s) for t, s, _, _ in node_ca_conditions(ds))
    assert out == {"NodeCADaemonAvailable": "False", "NodeCADaemonProgressing": "True"}
    assert node_ca_conditions(None)[0][1] == "False"


# --- ClusterOperator ---------------------------------------------------------------------------------

def cond(t, s, r, m, ltt="2026-01-01T12:00:00Z"):
    return {"type": t, "status": s, "reason": r, "message": m, "lastTransitionTime": ltt}


NODECA = [cond("NodeCADaemonAvailable", "True", "AsExpected", "The daemon set node-ca has available replicas"),
          cond("NodeCADaemonProgressing", "False", "AsExpected", "The daemon set node-ca is deployed")]
PRUNER = [cond("Available", "True", "AsExpected", "Pruner CronJob has been created")]


def test_co_healthy():
    config = [cond("Available", "True", "Ready", "The registry is ready"),
              cond("Progressing", "False", "Ready", "The registry is ready"),
              cond("Degraded", "False", "", ""), cond("Removed", "False", "", "")] + NODECA
    a = aggregate("Available", config, PRUNER)
    assert (a["status"], a["reason"]) == ("True", "Ready")
    assert a["message"] == ("Available: The registry is ready\nNodeCADaemonAvailable: The daemon set node-ca "
                            "has available replicas\nImagePrunerAvailable: Pruner CronJob has been created")
    p = aggregate("Progressing", config, PRUNER)
    assert (p["status"], p["reason"]) == ("False", "Ready")
    assert p["message"] == "Progressing: The registry is ready\nNodeCADaemonProgressing: The daemon set node-ca is deployed"
    d = aggregate("Degraded", config, PRUNER)
    assert (d["status"], d["reason"]) == ("False", "AsExpected")


def test_co_removed():
    config = [cond("Available", "True", "Removed", "The registry is removed"),
              cond("Progressing", "False", "Removed", "All registry resources are removed"),
              cond("Degraded", "False", "Removed", "The registry is removed")] + NODECA
    a = aggregate("Available", config)
    assert (a["status"], a["reason"]) == ("True", "Removed")
    assert a["message"].startswith("Available: The registry is removed")
    p = aggregate("Progressing", config)
    assert (p["status"], p["reason"]) == ("False", "Removed")
    assert p["message"].startswith("Progressing: All registry resources are removed")
    d = aggregate("Degraded", config)
    assert (d["status"], d["reason"]) == ("False", "Removed")


def test_co_storage_not_configured():
    msg = "Error: storage backend not configured"
    config = [cond("Available", "False", "StorageNotConfigured", msg),
              cond("Progressing", "False", "Error", "Unable to apply resources: storage backend not configured"),
              cond("Degraded", "True", "StorageNotConfigured", msg)] + NODECA
    a = aggregate("Available", config)
    assert (a["status"], a["reason"]) == ("False", "StorageNotConfigured")
    assert a["message"].startswith("Available: Error: storage backend not configured")
    d = aggregate("Degraded", config)
    assert (d["status"], d["reason"], d["message"]) == ("True", "StorageNotConfigured", f"Degraded: {msg}")
    p = aggregate("Progressing", config)
    assert (p["status"], p["reason"]) == ("False", "Error")


def test_co_reasons_sorted_joined_and_unknown():
    config = [cond("Available", "False", "NoReplicasAvailable", "x"),
              cond("NodeCADaemonAvailable", "False", "NoAvailableReplicas", "y")]
    a = aggregate("Available", config)
    assert a["reason"] == "NoReplicasAvailable::NodeCADaemonNoAvailableReplicas"
    config = [cond("Available", "True", "Ready", "ok"), cond("NodeCADaemonAvailable", "Unknown", "", "")]
    assert aggregate("Available", config)["status"] == "Unknown"


def test_co_last_transition_time():
    config = [cond("Available", "True", "Ready", "a", "2026-01-01T12:00:00Z"),
              cond("NodeCADaemonAvailable", "True", "AsExpected", "b", "2026-01-01T12:05:00Z")]
    assert aggregate("Available", config)["lastTransitionTime"] == "2026-01-01T12:05:00Z"
    prev = [cond("Available", "True", "Ready", "a", "2025-12-31T00:00:00Z")]
    out = cluster_operator_conditions(config, [], prev)
    assert [c["type"] for c in out] == ["Available", "Progressing", "Degraded"]
    assert out[0]["lastTransitionTime"] == "2025-12-31T00:00:00Z"   # status unchanged: kept
    prev = [cond("Available", "False", "X", "a", "2025-12-31T00:00:00Z")]
    out = cluster_operator_conditions(config, [], prev)
    assert out[0]["lastTransitionTime"] == "2026-01-01T12:05:00Z"


@pytest.mark.parametrize("t", ["Available", "Progressing", "Degraded"])
def test_co_no_inputs_is_normal(t):
    c = aggregate(t, [])
    assert c["reason"] == "AsExpected" and c["status"] == {"Available": "True"}.get(t, "False")


# --- release-4.12 ... 4.21 (the default of the local cluster: 4.18), operator-facts §6.4, §12.1 -------
def run_418(state, dep, err=None, previous=(), now=NOW, routes=()):
    conds = config_conditions(state, dep, err, list(previous), GRACE, routes=routes, now=now, release=(4, 18))
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in conds}, conds


def test_418_complete_by_counts():
    d = deploy(available=1, replicas=1, complete=False)     # counts complete, no NewReplicaSetAvailable yet
    d["spec"] = {"replicas": 1}
    c, _ = run_418("Managed", d)
    assert c["Available"][:2] == ("True", "Ready") and c["Progressing"][:2] == ("False", "Ready")


def test_418_minimum_availability_while_not_complete():
    d = deploy(available=1, replicas=1, complete=False)
    d["spec"] = {"replicas": 2}
    c, _ = run_418("Managed", d)
    assert c["Available"][:2] == ("True", "MinimumAvailability")
    assert c["Progressing"][:2] == ("True", "DeploymentNotCompleted")


def test_418_deadline_degrades_only_while_available():
    d = deploy(available=1, replicas=2, complete=False, deadline=True)
    d["spec"] = {"replicas": 2}
    c, _ = run_418("Managed", d)
    assert c["Degraded"][:2] == ("True", "ProgressDeadlineExceeded")
    d0 = deploy(available=0, replicas=1, complete=False, deadline=True)
    d0["spec"] = {"replicas": 1}
    c, _ = run_418("Managed", d0)
    assert c["Degraded"][0] == "False"        # Available=False within the grace: no Degraded at all
