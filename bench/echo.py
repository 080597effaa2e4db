"""A bare channel-layer echo process: the floor under any worker round trip."""

from __future__ import annotations

import asyncio

import django


async def main() -> None:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    while True:
        message = await layer.receive("bench-echo")
        await layer.send(message["reply_to"], {"type": "echo.reply"})


if __name__ == "__main__":
    django.setup()
    asyncio.run(main())
