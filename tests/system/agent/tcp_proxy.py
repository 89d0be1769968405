# -*- coding: utf-8 -*-
"""A tiny TCP forwarder: 127.0.0.1:LISTEN -> 127.0.0.1:UPSTREAM.

The S3 fault test puts it between restic and moto and kills it (by PID) mid-backup:
the network dies, moto keeps its data. It writes the bytes forwarded upstream to a
stats file so the test can kill it once the backup is really under way.

    python3 tcp_proxy.py LISTEN_PORT UPSTREAM_PORT STATS_FILE
"""
import asyncio
import os
import sys

LISTEN, UPSTREAM, STATS = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
forwarded = 0


async def pipe(reader, writer, count):
    global forwarded
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if count:
                forwarded += len(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def handle(client_reader, client_writer):
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", UPSTREAM)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, upstream_writer, True), pipe(upstream_reader, client_writer, False))


async def report():
    while True:
        tmp = STATS + ".tmp"
        with open(tmp, "w") as handle:
            handle.write(str(forwarded))
        os.replace(tmp, STATS)
        await asyncio.sleep(0.05)


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", LISTEN, reuse_address=True)
    asyncio.ensure_future(report())
    async with server:
        await server.serve_forever()


asyncio.run(main())
