"""Run one sync of a connector in its own process (the SIGKILL test kills it at random points).

``python -m tests.testpos.runsync CONNECTOR [--lease-seconds S]`` with ``CLASP_PLUGINS`` naming
``tests.testpos.plugin``. A lease left by a killed predecessor is waited out, as the scheduler would.
Prints the finished run as JSON; exit status 0 when it succeeded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from core.runtime import create_runtime
from core.sync import SyncBusy, SyncFailed, SyncOptions, run_sync


async def main(connector: str, lease_seconds: float, wait: float) -> int:
    rt = create_runtime()
    opts = SyncOptions(lease_seconds=lease_seconds, renew_seconds=max(0.1, lease_seconds / 3),
                       retry_base_delay=0.01, retry_max_delay=0.05)
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                run = await run_sync(rt, connector, trigger="test", options=opts)
                break
            except SyncBusy:
                if time.monotonic() > deadline:
                    print("busy", file=sys.stderr)
                    return 3
                await asyncio.sleep(0.1)
            except SyncFailed as exc:
                print(json.dumps({"status": exc.run.status, "message": exc.run.message}))
                return 1
        print(json.dumps({"status": run.status, "records": run.records, "pages": run.pages}))
        return 0
    finally:
        await rt.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("connector")
    parser.add_argument("--lease-seconds", type=float, default=1.5)
    parser.add_argument("--wait", type=float, default=60.0)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.connector, args.lease_seconds, args.wait)))
