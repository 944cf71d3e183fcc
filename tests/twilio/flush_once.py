"""Run the outbox sender once in this process (the crash tests SIGKILL-equivalent it via
CLASP_OUTBOX_CRASH_AT). Prints the flush report as JSON."""

from __future__ import annotations

import asyncio
import json

from core.outreach.sender import flush
from core.runtime import create_runtime


async def main() -> None:
    rt = create_runtime()
    try:
        report = await flush(rt)
    finally:
        await rt.close()
    print(json.dumps(report.summary()))


if __name__ == "__main__":
    asyncio.run(main())
