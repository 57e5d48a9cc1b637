"""Small asyncio helpers the local cluster's servers share: closing things quietly."""
from __future__ import annotations

from typing import Iterable


async def close_all(things: Iterable) -> None:
    """Await `close()` of each of `things` in turn, ignoring what any of them raises."""
    for thing in list(things):
        try:
            await thing.close()
        except Exception:  # noqa: BLE001
            pass

