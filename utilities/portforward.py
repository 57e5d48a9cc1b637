"""Reach one pod directly, as `kubectl port-forward` does, on a real cluster and on the local one.

    with open_local_port(core_v1_api, "openshift-image-registry", pod_name, 5000) as (host, port):
        requests.get(f"https://{host}:{port}/v2/", verify=ca, headers={"Host": ...})

Listens on 127.0.0.1 (an ephemeral port) and relays every accepted connection over a NEW port-forward
(`pods/portforward` WebSocket, through the official client's `kubernetes.stream.portforward`), in
threads, so any client (requests, skopeo, oras) can talk to that one replica. Needs `create` on
`pods/portforward` in the pod's namespace. TLS is end to end: the pod's certificate names the service,
not 127.0.0.1, so HTTPS clients must check it against the service name (e.g. with a Host/SNI override
or by verifying the CA only).

The yielded value is a tuple `(host, port)` with two extra attributes: `.errors` (messages of failed
forwards: the API server refused, or the pod's error channel spoke) and `.connections` (how many
connections were accepted so far).
"""
from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading

from kubernetes import client as k8s
from kubernetes.stream import portforward
from utilities import kube

log = logging.getLogger(__name__)

_BUF = 256 * 1024


class LocalPort(tuple):
    """("127.0.0.1", port), plus `.errors` and `.connections`."""

    def __new__(cls, host: str, port: int):
        obj = super().__new__(cls, (host, port))
        obj.errors = []
        obj.connections = 0
        return obj

    @property
    def host(self) -> str:
        return self[0]

    @property
    def port(self) -> int:
        return self[1]


def _pump(client: socket.socket, remote: socket.socket, stop: threading.Event) -> None:
    """Copy both ways until either side ends (or `stop`)."""
    socks = [client, remote]
    while not stop.is_set():
        try:
            readable, _, _ = select.select(socks, [], [], 0.25)
        except (OSError, ValueError):
            return
        for s in readable:
            try:
                data = s.recv(_BUF)
            except OSError:
                return
            if not data:
                return
            other = remote if s is client else client
            try:
                other.sendall(data)
            except OSError:
                return


def _handshake_transient(exc: BaseException, can_forward: bool) -> bool:
    """A port-forward handshake worth trying again: a transient API answer; or the official client's
    AttributeError, which is all it raises when the server refuses the WebSocket upgrade, whatever the
    status, so it is retried only when the pod runs and the user may forward to it (the refusal was
    then a transient one, a 5xx)."""
    return kube.is_transient(exc) or (can_forward and isinstance(exc, AttributeError))


def _can_forward(core_v1_api, namespace: str, pod: str) -> bool:
    """The pod is Running with an IP, and the user may create pods/portforward in its namespace."""
    try:
        p = kube.call(core_v1_api.read_namespaced_pod, pod, namespace)
        if p.status is None or p.status.phase != "Running" or not p.status.pod_ip:
            return False
        review = kube.call(k8s.AuthorizationV1Api(core_v1_api.api_client).create_self_subject_access_review,
                           {"spec": {"resourceAttributes": {"namespace": namespace, "verb": "create",
                                                            "resource": "pods", "subresource": "portforward",
                                                            "name": pod}}})
        return bool(review.status and review.status.allowed)
    except kube.ApiException:
        return False


@contextlib.contextmanager
def open_local_port(core_v1_api, namespace: str, pod: str, remote_port: int, host: str = "127.0.0.1"):
    """Context manager yielding ("127.0.0.1", local_port) that forwards to `pod`:`remote_port`."""
    # The official client swaps `api_client.request` while it opens a port-forward: not thread-safe.
    # A private ApiClient (same configuration) and a lock keep that away from the caller's client.
    api_client = kube.ApiClient(configuration=core_v1_api.api_client.configuration)
    pf_api = k8s.CoreV1Api(api_client)
    open_lock = threading.Lock()
    stop = threading.Event()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, 0))
    listener.listen(64)
    listener.settimeout(0.2)
    result = LocalPort(host, listener.getsockname()[1])
    threads: list[threading.Thread] = []
    open_clients: set[socket.socket] = set()
    guard = threading.Lock()

    can_forward = _can_forward(core_v1_api, namespace, pod)

    @kube.retrying(attempts=6, deadline=30, transient=lambda e: _handshake_transient(e, can_forward))
    def open_forward():
        with open_lock:
            return portforward(pf_api.connect_get_namespaced_pod_portforward, pod, namespace,
                               ports=str(remote_port))

    def relay(client: socket.socket) -> None:
        pf = None
        try:
            try:
                pf = open_forward()
            except Exception as e:  # noqa: BLE001 - ApiException, or AttributeError on a refused handshake
                msg = f"port-forward to {namespace}/{pod}:{remote_port} failed: {getattr(e, 'reason', None) or e}"
                log.warning("%s", msg)
                result.errors.append(msg)
                return
            remote = pf.socket(remote_port)
            _pump(client, remote._socket, stop)
            err = pf.error(remote_port)
            if err:
                log.warning("port-forward to %s/%s:%s: %s", namespace, pod, remote_port, err)
                result.errors.append(err)
        finally:
            with guard:
                open_clients.discard(client)
            for closer in (lambda: client.shutdown(socket.SHUT_RDWR), client.close,
                           (pf.close if pf is not None else (lambda: None))):
                try:
                    closer()
                except OSError:
                    pass

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            client.settimeout(None)
            result.connections += 1
            with guard:
                open_clients.add(client)
            t = threading.Thread(target=relay, args=(client,), daemon=True,
                                 name=f"port-forward {namespace}/{pod}:{remote_port}")
            threads.append(t)
            t.start()

    acceptor = threading.Thread(target=accept_loop, daemon=True, name=f"port-forward accept {result.port}")
    acceptor.start()
    try:
        yield result
    finally:
        stop.set()
        acceptor.join(5)
        listener.close()
        with guard:
            for c in list(open_clients):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for t in threads:
            t.join(5)
        api_client.close()
