"""Small asyncio helpers the local cluster's servers share: closing things quietly, relaying a stream."""
from __future__ import annotations

import asyncio
from typing import Iterable

RELAY_CHUNK = 256 * 1024


async def close_all(things: Iterable) -> None:
    """Await `close()` of each of `things` in turn, ignoring what any of them raises."""
    for thing in list(things):
        try:
            await thing.close()
        except Exception:  # noqa: BLE001
            pass



async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               ignore: tuple[type[BaseException], ...]) -> None:
    """Copy `reader` to `writer` until end of file, then half-close `writer` where it can.

    The exceptions in `ignore` end the copy quietly; any other propagates (after the half-close).
    """
    try:
        while True:
            data = await reader.read(RELAY_CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ignore:
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass
