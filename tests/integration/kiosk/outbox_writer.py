"""Subprocess for the kill -9 test: appends taps in a loop and prints each one only after append returned.

Every 7th tap it also acknowledges the oldest pending ones, so the kill lands in both kinds of write
transaction. It never purges, so the test can verify the whole chain from genesis. Run: ``python -m tests.integration.kiosk.outbox_writer PATH``.
"""

from __future__ import annotations

import datetime as dt
import sys

from kiosk.outbox import Outbox, TapDraft


def main(path: str) -> None:
    box = Outbox(path, capacity=10**6)
    i = 0
    while True:
        i += 1
        tap = box.append(
            TapDraft(
                credential_kind="card",
                credential_hash=f"{i:064x}",
                direction="in",
                device_time=dt.datetime.now(dt.UTC),
                device_tz="Asia/Shanghai",
                member_id=1 + i % 50,
            )
        )
        sys.stdout.write(f"{tap.seq} {tap.event_id}\n")
        sys.stdout.flush()
        if i % 7 == 0:
            box.mark_acked(t.event_id for t in box.pending(3))


if __name__ == "__main__":
    main(sys.argv[1])
