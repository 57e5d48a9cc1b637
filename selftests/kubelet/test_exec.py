"""pods/exec through the OFFICIAL client (`kubernetes.stream.stream`, WebSocket, v4.channel.k8s.io): the API
server authorizes it, the kubelet runs the command (a local process, arguments under a mountPath mapped to
the volume's directory), stdout and stderr come back on their channels and the exit code in the Status."""
from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

from selftests.kubelet.kubelet_support import Cluster, pause_pod

NS = "exec-test"


@pytest.fixture(scope="module")
def cluster(api, loop_thread):
    c = Cluster(api, loop_thread).start(router=False)
    yield c
    c.close()


def _core(api, user="kube:admin") -> k8s.CoreV1Api:
    ca = api.settings.state_dir / "exec-test-ca.crt"
    ca.write_bytes(api.ca_pem)
    conf = k8s.Configuration(host=api.url, api_key={"BearerToken": api.tokens[user]},
                             api_key_prefix={"BearerToken": "Bearer"})
    conf.ssl_ca_cert = str(ca)
    return k8s.CoreV1Api(k8s.ApiClient(conf))


@pytest.fixture(scope="module")
def pod(cluster):
    """A running pause pod with a PV mounted at /mnt/data holding one file."""
    cluster.namespace(NS)
    pv = cluster.bound_pvc(NS, "data")
    host = cluster.settings.state_dir / "pvs" / pv
    host.mkdir(parents=True, exist_ok=True)
    (host / "hello.txt").write_text("hello from the volume")
    cluster.apply(pause_pod(NS, "p", "worker-0", volumes=[{"name": "data",
                                                          "persistentVolumeClaim": {"claimName": "data"}}]))
    cluster.wait(lambda: (cluster.pod(NS, "p") or {}).get("status", {}).get("phase") == "Running",
                 timeout=15, what="pod Running")
    return "p"


def _exec(core, name, command, ns=NS):
    ws = stream(core.connect_get_namespaced_pod_exec, name, ns, command=command, stdout=True, stderr=True,
                stdin=False, tty=False, _preload_content=False)
    ws.run_forever(timeout=30)
    out, err = ws.read_stdout(), ws.read_stderr()
    return out, err, ws.returncode


def test_stdout_stderr_and_exit_code(api, cluster, pod):
    code = "import sys; print(open(sys.argv[1]).read()); sys.stderr.write('warned'); sys.exit(3)"
    out, err, rc = _exec(_core(api), pod, ["python", "-c", code, "/mnt/data/hello.txt"])
    assert (out.strip(), err, rc) == ("hello from the volume", "warned", 3)
    out, err, rc = _exec(_core(api), pod, ["python", "-c", "import sys; print(sys.argv[1:])", "/mnt/data/x", "y"])
    host = cluster.settings.state_dir / "pvs" / f"pv-{NS}-data"
    assert (out.strip(), rc) == (str([str(host / "x"), "y"]), 0)
    # the client reads the whole output, several frames of it
    out, _, rc = _exec(_core(api), pod, ["python", "-c", "print('x' * 300000)"])
    assert (len(out.strip()), rc) == (300000, 0)


def test_a_program_that_is_not_there(api, cluster, pod):
    out, err, rc = _exec(_core(api), pod, ["no-such-program-here"])
    assert rc == 126 and "no-such-program-here" in err


def _refusal(core, name, command=("true",), ns=NS) -> str:
    """The handshake's answer as the client surfaces it: an ApiException whose reason holds the HTTP status
    and the Status body (this client version then fails decoding it: AttributeError, the ApiException as its
    context)."""
    with pytest.raises(Exception) as e:     # noqa: PT011 - which one depends on the client version
        _exec(core, name, list(command), ns=ns)
    err = e.value if isinstance(e.value, ApiException) else e.value.__context__
    assert isinstance(err, ApiException), e.value
    return err.reason


def test_refusals(api, cluster, pod):
    assert "404 Not Found" in _refusal(_core(api), "missing") and 'pods \\"missing\\" not found' in \
        _refusal(_core(api), "missing")
    assert "404 Not Found" in _refusal(_core(api), pod, ns="default")
    why = _refusal(_core(api, "nobody"), pod)        # no right at all: the GET's own verb is named first
    assert "403 Forbidden" in why and 'cannot get resource \\"pods/exec\\"' in why, why


def test_get_alone_is_not_enough(api, cluster, pod):
    """An exec over WebSocket is a GET: `get` on pods/exec, and `create` as kube 1.35 checks too."""
    rbac = k8s.RbacAuthorizationV1Api(_core(api).api_client)
    rbac.create_namespaced_role(NS, {"metadata": {"name": "exec-get"}, "rules": [
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get"]}]})
    rbac.create_namespaced_role_binding(NS, {
        "metadata": {"name": "exec-get"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "exec-get"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "nobody"}]})
    why = _refusal(_core(api, "nobody"), pod)
    assert "403 Forbidden" in why and 'cannot create resource \\"pods/exec\\"' in why, why


def test_a_container_that_is_not_running(api, cluster):
    core = _core(api)
    core.create_namespaced_pod(NS, {"metadata": {"name": "unbound"}, "spec": {
        "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.9"}]}})
    why = _refusal(core, "unbound")      # no node
    assert "400 Bad Request" in why and "pod unbound does not have a host assigned" in why, why
    # On a node, but its secret volume is missing: the container waits in ContainerCreating.
    core.create_namespaced_pod(NS, pause_pod(NS, "waiting", "worker-0", volumes=[
        {"name": "s", "secret": {"secretName": "not-there"}}]))
    why = _refusal(core, "waiting")
    assert "400 Bad Request" in why and 'container not found (\\"main\\")' in why, why
    why = _refusal(core, "waiting", command=())
    assert "400 Bad Request" in why and "you must specify at least 1 command" in why, why


def test_discovery_lists_exec(api):
    res = {r.name: r for r in _core(api).get_api_resources().resources}
    assert sorted(res["pods/exec"].verbs) == ["create", "get"] and res["pods/exec"].kind == "PodExecOptions"


def test_only_the_asked_channels_come_back(api, cluster, pod):
    ws = stream(_core(api).connect_get_namespaced_pod_exec, pod, NS, stdout=False, stderr=True, stdin=False,
                tty=False, _preload_content=False,
                command=["python", "-c", "import sys; print('out'); sys.stderr.write('err')"])
    ws.run_forever(timeout=30)
    assert (ws.read_stdout(), ws.read_stderr(), ws.returncode) == ("", "err", 0)


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def _started(core, pod) -> tuple:
    """An exec that prints its pid and then sleeps: (the client's websocket, the pid)."""
    ws = stream(core.connect_get_namespaced_pod_exec, pod, NS, stdout=True, stderr=True, stdin=False, tty=False,
                _preload_content=False, command=["python", "-c", "import os, time; print(os.getpid(), flush=True); "
                                                                 "time.sleep(60)"])
    return ws, int(ws.readline_stdout(timeout=20))


def test_bounded_by_a_timeout(api, cluster, pod):
    cluster.kubelet.exec_timeout = 1.5
    try:
        ws, pid = _started(_core(api), pod)
        ws.run_forever(timeout=30)
        assert ws.returncode == 137 and "exec ended after its 1.5 s timeout" in ws.read_stderr()
        assert _gone(pid)
    finally:
        cluster.kubelet.exec_timeout = type(cluster.kubelet).exec_timeout


def test_the_command_ends_when_the_client_leaves_or_the_pod_goes(api, cluster, pod):
    ws, pid = _started(_core(api), pod)
    ws.close()
    cluster.wait(lambda: _gone(pid), timeout=10, what="the exec process killed when the client left")
    cluster.apply(pause_pod(NS, "short-lived", "worker-0"))
    cluster.wait(lambda: (cluster.pod(NS, "short-lived") or {}).get("status", {}).get("phase") == "Running",
                 timeout=15, what="pod Running")
    ws, pid = _started(_core(api), "short-lived")
    try:
        cluster.delete_pod(NS, "short-lived", grace=0)
        cluster.wait(lambda: _gone(pid), timeout=10, what="the exec process killed with its pod")
    finally:
        ws.close()
