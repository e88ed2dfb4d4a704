#!/usr/bin/python3
"""A TCP relay that adds a round-trip time: every chunk is delayed by D/2 in
each direction, order preserved (netem stands in for nothing here: it needs
privileges and a kernel module we do not assume).

    delay_relay.py --listen 127.0.0.70:10625 --target 127.0.0.50:10525 --rtt-ms 20

The client's connect() to the relay completes at once (the kernel does the
handshake), so the relay models it instead: it opens the upstream
connection 1.5 D after accepting -- SYN (D/2), SYN-ACK (D/2), ACK (D/2)
before the server sees the connection -- and the greeting then takes D/2 to
come back, so "connection + greeting" costs 2 D, as on a real path.  Every
later byte costs D/2 each way.  Bytes are forwarded as read (no
coalescing): a pipelined group that reached the relay in one chunk leaves
in one chunk, D/2 later.

Runs until killed (SIGTERM); prints "ready" on stdout once listening.
"""
import argparse
import asyncio
import signal
import sys

BUF = 65536


async def pump(reader, writer, delay, loop):
    """Read chunks; write each one `delay` seconds after it was read,
    in order, without holding up the reads."""
    queue = asyncio.Queue()

    async def forward():
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                try:
                    writer.write_eof()
                except (OSError, RuntimeError):
                    pass
                return
            writer.write(data)
            try:
                await writer.drain()
            except OSError:
                return

    task = asyncio.ensure_future(forward())
    try:
        while True:
            try:
                data = await reader.read(BUF)
            except OSError:
                data = b""
            queue.put_nowait((loop.time() + delay, data or None))
            if not data:
                break
        await task
    finally:
        task.cancel()


async def serve(args):
    loop = asyncio.get_running_loop()
    half = args.rtt_ms / 2000.0
    tip, tport = args.target.rsplit(":", 1)

    async def handle(creader, cwriter):
        try:
            await asyncio.sleep(3 * half)   # SYN, SYN-ACK, ACK
            sreader, swriter = await asyncio.open_connection(tip, int(tport))
        except OSError:
            cwriter.close()
            return
        try:
            await asyncio.gather(pump(creader, swriter, half, loop),
                                 pump(sreader, cwriter, half, loop))
        finally:
            for w in (cwriter, swriter):
                try:
                    w.close()
                except OSError:
                    pass

    lip, lport = args.listen.rsplit(":", 1)
    server = await asyncio.start_server(handle, lip, int(lport), backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    async with server:
        await stop.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", required=True, help="IP:PORT to accept on")
    ap.add_argument("--target", required=True, help="IP:PORT of the server")
    ap.add_argument("--rtt-ms", type=float, default=20.0, help="round-trip time D")
    asyncio.run(serve(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
