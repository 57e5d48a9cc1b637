"""`pods/portforward` over WebSocket, as kube-apiserver and the kubelet serve it.

`GET /api/v1/namespaces/{ns}/pods/{name}/portforward?ports=P[,Q...]` with `Upgrade: websocket`.
Sub-protocols accepted (the first the client offers that is known here wins): `v4.channel.k8s.io`,
`portforward.k8s.io`, or none; all use the binary channel framing: every WebSocket message is one byte
of channel number followed by data. Port i (in the order of `ports`) has data channel 2*i and error
channel 2*i+1; the first message on each carries the port number as 2 bytes little-endian. Data the
client sends on channel 2*i goes to the pod's `status.podIP`:P over TCP, and what the pod answers comes
back on channel 2*i. When the connection to the pod cannot be made, a message goes on the error
channel. The WebSocket closes when every port's connection has ended, or when the client closes it.

Refused before the upgrade (HTTP Status answers): not a WebSocket upgrade (400), no or bad `ports`
(400), pod not found (404), pod with no node (400 `pod X does not have a host assigned`), pod not
Running or without a podIP (400).
"""
from __future__ import annotations

import asyncio
import logging
import struct

import aiohttp
from aiohttp import web

from . import channels, errors

log = logging.getLogger("localcluster.apiserver.portforward")

PROTOCOLS = ("v4.channel.k8s.io", "portforward.k8s.io")
CONNECT_TIMEOUT = 5.0
READ_SIZE = 256 * 1024


def parse_ports(query) -> list[int]:
    raw = []
    for v in query.getall("ports", []):
        raw.extend(p.strip() for p in v.split(",") if p.strip())
    if not raw:
        raise errors.bad_request('query parameter "ports" is required')
    ports = []
    for p in raw:
        try:
            n = int(p)
        except ValueError:
            raise errors.bad_request(f'unable to parse "{p}" as a port: invalid syntax') from None
        if not 0 < n < 65536:
            raise errors.bad_request(f"port {n} must be > 0 and < 65536")
        if n in ports:
            raise errors.bad_request(f"duplicate port {n}")
        ports.append(n)
    return ports


def check_pod(pod: dict) -> str:
    """The pod IP to connect to, or an APIError as kube answers for a pod one cannot forward to."""
    name = pod["metadata"]["name"]
    if not (pod.get("spec") or {}).get("nodeName"):
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    if pod["metadata"].get("deletionTimestamp") and phase != "Running":
        raise errors.bad_request(f"pod {name} is being deleted")
    if phase != "Running":
        raise errors.bad_request(f"unable to upgrade connection: pod {name} is not running "
                                 f"(current phase is {phase})")
    ip = status.get("podIP")
    if not ip:
        raise errors.bad_request(f"unable to upgrade connection: pod {name} has no IP address")
    return ip


class _Port:
    def __init__(self, index: int, port: int):
        self.index = index
        self.port = port
        self.data_channel = 2 * index
        self.error_channel = 2 * index + 1
        self.writer: asyncio.StreamWriter | None = None
        self.pump: asyncio.Task | None = None
        self.done = asyncio.Event()


async def serve(request: web.Request, pod: dict, ports: list[int], sockets: set) -> web.StreamResponse:
    """Upgrade `request` and relay each port; `sockets` tracks open WebSockets (closed on server stop)."""
    ip = check_pod(pod)
    uid = pod["metadata"].get("uid", "")
    ws, send = await channels.open_channels(request, PROTOCOLS, sockets)
    state = [_Port(i, p) for i, p in enumerate(ports)]
    by_channel = {p.data_channel: p for p in state}
    try:
        for p in state:
            head = struct.pack("<H", p.port)
            await send(p.data_channel, head)
            await send(p.error_channel, head)

        async def pump(p: _Port, reader: asyncio.StreamReader) -> None:
            try:
                while True:
                    chunk = await reader.read(READ_SIZE)
                    if not chunk:
                        break
                    await send(p.data_channel, chunk)
            except (ConnectionError, OSError):
                pass
            except Exception:  # noqa: BLE001 - a closed WebSocket while sending
                pass
            finally:
                p.done.set()

        for p in state:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, p.port), CONNECT_TIMEOUT)
            except (OSError, asyncio.TimeoutError) as e:
                why = "i/o timeout" if isinstance(e, asyncio.TimeoutError) else \
                    ("connect: connection refused" if isinstance(e, ConnectionRefusedError) else str(e))
                await send(p.error_channel, (
                    f"an error occurred forwarding {p.port} -> {p.port}: error forwarding port {p.port} to pod "
                    f"{uid}, uid : dial tcp4 {ip}:{p.port}: {why}").encode())
                p.done.set()
                continue
            p.writer = writer
            p.pump = asyncio.create_task(pump(p, reader))

        async def close_when_all_done() -> None:
            await asyncio.gather(*(p.done.wait() for p in state))
            await ws.close()

        closer = asyncio.create_task(close_when_all_done())
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                    continue
                p = by_channel.get(msg.data[0])
                if p is None or p.writer is None or p.done.is_set():
                    continue
                try:
                    p.writer.write(msg.data[1:])
                    await p.writer.drain()
                except (ConnectionError, OSError):
                    p.done.set()
        finally:
            closer.cancel()
    finally:
        for p in state:
            if p.pump is not None:
                p.pump.cancel()
            if p.writer is not None:
                try:
                    p.writer.close()
                except Exception:  # noqa: BLE001
                    pass
        await channels.finish(ws, sockets)
    return ws
