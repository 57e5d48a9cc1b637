"""The bridge out of the real control plane's network namespace (localcluster/realcp/netns.py) keeps a
connection whose far side is not there yet: it tries the far side again, instead of closing the
client's connection at once (which the client sees as EOF in its TLS handshake, as CI once did).
Needs no binaries: the bridge's two halves run here on a Unix socket and loopback."""
from __future__ import annotations

import asyncio

from localcluster.realcp import netns
from selftests.support import free_loopback_address


def test_a_far_side_that_fails_at_first_is_tried_again():
    calls = []

    async def opener():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError("refused")
        return "reader", "writer"

    assert asyncio.run(netns._open_far_side(opener, tries=5, wait=0.001)) == ("reader", "writer")
    assert len(calls) == 3


def test_a_far_side_that_never_answers_is_given_up_after_the_tries():
    calls = []

    async def opener():
        calls.append(1)
        raise ConnectionRefusedError("refused")

    assert asyncio.run(netns._open_far_side(opener, tries=4, wait=0.001)) is None
    assert len(calls) == 4


def test_the_bridge_relays_to_a_listener_that_comes_up_late(tmp_path):
    """Outer 127.0.0.1 listener -> Unix socket -> inner TCP address whose listener starts 0.3 s after
    the client connected: the client's bytes arrive and the answer comes back."""
    ip, port = free_loopback_address()

    async def main():
        inner = netns.InnerBridge(tmp_path)
        await inner.expose("api", ip, port)
        outer = netns.OuterBridge(tmp_path)
        await outer.start(inner.exposed)
        host, outer_port = outer.addresses[f"{ip}:{port}"].split(":")

        async def echo(r, w):
            w.write(await r.readexactly(5))
            await w.drain()
            w.close()

        r, w = await asyncio.open_connection(host, int(outer_port))
        w.write(b"hello")
        await w.drain()
        await asyncio.sleep(0.3)
        server = await asyncio.start_server(echo, ip, port)
        try:
            return await asyncio.wait_for(r.readexactly(5), 10)
        finally:
            w.close()
            server.close()
            await inner.close()
            await outer.close()

    assert asyncio.run(main()) == b"hello"
