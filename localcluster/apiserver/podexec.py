"""`pods/exec` over WebSocket, as kube-apiserver serves it with the kubelet behind it.

`GET /api/v1/namespaces/{ns}/pods/{name}/exec?command=A&command=B&container=C&stdout=1&stderr=1` with
`Upgrade: websocket` and the sub-protocol `v4.channel.k8s.io` (channels.py: one byte of channel, then
data). stdout goes on channel 1, stderr on 2; when the command has ended, channel 3 carries a
metav1.Status: `{"status": "Success"}`, or a Failure with reason NonZeroExitCode and
`details.causes[0] = {"reason": "ExitCode", "message": "<code>"}` (where the official client reads the
return code), and the WebSocket closes. The command runs through the kubelet (`Kubelet.exec_in`, a
stand-in that runs it as a local process); if the client closes first, the command is killed.
stdin and tty are not offered (no client here needs them): asking for them is refused.

Refused before the upgrade (HTTP Status answers): not a WebSocket upgrade, no command, none of
stdout/stderr, stdin or tty (400); pod not found (404); pod with no node, a container the pod does not
have, no container named in a pod of several, the container not running (400).
"""
from __future__ import annotations

import asyncio
import json

import aiohttp
from aiohttp import web

from . import channels, errors

PROTOCOLS = ("v4.channel.k8s.io", "channel.k8s.io")
STDOUT, STDERR, STATUS = 1, 2, 3


def _flag(query, name: str) -> bool:
    return query.get(name, "").lower() in ("1", "true")


def parse(query, pod: dict) -> tuple[str, list[str], bool, bool]:
    """(container, command, stdout, stderr) of the request, or the APIError kube answers."""
    command = query.getall("command", [])
    if not command:
        raise errors.bad_request("you must specify at least 1 command")
    out, err = _flag(query, "stdout"), _flag(query, "stderr")
    if _flag(query, "stdin") or _flag(query, "tty"):
        raise errors.bad_request("the local cluster's pods/exec offers no stdin and no tty")
    if not (out or err):
        raise errors.bad_request("you must specify at least one of stdin, stdout, stderr")
    name = pod["metadata"]["name"]
    if not (pod.get("spec") or {}).get("nodeName"):
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    container = query.get("container", "")
    if not container:
        if len(names) != 1:
            raise errors.bad_request(f"a container name must be specified for pod {name}, choose one of: "
                                     f"[{' '.join(names)}]")
        container = names[0]
    elif container not in names:
        raise errors.bad_request(f"container {container} is not valid for pod {name}")
    return container, command, out, err


def status(code: int, command: list[str]) -> dict:
    """The Status sent on channel 3 when the command has ended."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "message": f"command terminated with non-zero exit code: error executing command {command}, "
                       f"exit code {code}",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


async def serve(request: web.Request, pod: dict, kubelet, sockets: set) -> web.StreamResponse:
    """Run the command of `request` in `pod` through `kubelet` and stream it over a WebSocket."""
    from localcluster.controllers.kubelet import ExecRefused
    container, command, want_out, want_err = parse(request.query, pod)
    if kubelet is None:
        raise errors.bad_request("unable to upgrade connection: no kubelet serves this cluster's pods")
    try:
        job = await kubelet.exec_in(pod["metadata"]["uid"], container, command)
    except ExecRefused as e:
        raise errors.bad_request(str(e)) from None
    ws, send = await channels.open_channels(request, PROTOCOLS, sockets)

    def sink(channel: int, wanted: bool):
        async def put(data: bytes) -> None:
            if wanted and not ws.closed:
                await send(channel, data)
        return put

    run = asyncio.create_task(job.run(sink(STDOUT, want_out), sink(STDERR, want_err)))

    async def until_client_leaves() -> None:
        async for msg in ws:        # nothing is read from the client (no stdin); only its close counts
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                break

    watcher = asyncio.create_task(until_client_leaves())
    try:
        await asyncio.wait({run, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if run.done() and not run.exception() and not ws.closed:
            await send(STATUS, json.dumps(status(run.result(), command)).encode())
    finally:
        watcher.cancel()
        if not run.done():
            job.kill()
            run.cancel()
        await channels.finish(ws, sockets)
    return ws
