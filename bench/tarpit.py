#!/usr/bin/python3
"""A server that accepts TCP connections and never says a word: every
client waiting for an SMTP banner stays in flight until its own timeout.
bench/run aims 10,000 verifications at it to measure memory per in-flight
verification.

    tarpit.py --listen 127.0.0.77:10625

Prints "ready" once listening; on SIGTERM prints the most connections it
held at once ("peak N") and exits.
"""
import argparse
import asyncio
import resource
import signal
import sys


async def serve(ip, port):
    loop = asyncio.get_running_loop()
    held = 0
    peak = 0

    async def handle(reader, writer):
        nonlocal held, peak
        held += 1
        peak = max(peak, held)
        try:
            while await reader.read(4096):
                pass
        except OSError:
            pass
        finally:
            held -= 1
            writer.close()

    server = await asyncio.start_server(handle, ip, port, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    async with server:
        await stop.wait()
    print(f"peak {peak}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", required=True, help="IP:PORT")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ip, port = args.listen.rsplit(":", 1)
    asyncio.run(serve(ip, int(port)))


if __name__ == "__main__":
    sys.exit(main())
