"""Child process for test_sqlite_saver_crash.py: writes checkpoints until it is killed.

``python _crash_writer.py DB SEED SYNCHRONOUS`` writes checkpoints forever. After each
``aput`` returns it prints ``C <thread> <step> <checkpoint_id>``, and after the
``aput_writes`` for that checkpoint returns ``W <thread> <step> <checkpoint_id>`` — with
a single ``os.write`` each, so a line is either complete in the pipe or absent.

``python _crash_writer.py --zygote`` imports everything once and then forks one writer
per ``run DB SEED SYNCHRONOUS`` line read from stdin, printing ``forked <pid>`` and, once
the writer is dead, ``reaped <pid>``. Importing LangGraph takes most of a second, so
forking a pre-imported process is what lets the test kill 50 writers quickly. The zygote
never opens the database: each writer opens its own connections after the fork.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from checkpoints.sqlite_saver import FastSqliteSaver


def expected_values(step: int) -> dict[str, Any]:
    """The channel values stored at ``step`` (checked by the test after a crash)."""
    return {
        "step": step,
        "items": list(range(step % 50)),  # a blob that changes every step
        "note": "n" * (step % 300),  # inline when short, a blob when long
        "fixed": {"config": "unchanged", "size": 1000},  # a blob written once
    }


def _say(line: str) -> None:
    os.write(1, (line + "\n").encode())


async def write_forever(db: str, seed: int, synchronous: str) -> None:
    thread_id = f"t{seed % 3}"
    async with FastSqliteSaver.from_path(db, synchronous=synchronous) as saver:  # type: ignore[arg-type]
        base: dict[str, Any] = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        latest = await saver.aget_tuple(base)
        if latest is None:
            step, parent_id, versions = 0, None, {}
        else:
            step = int(latest.checkpoint["channel_values"]["step"]) + 1
            parent_id = latest.config["configurable"]["checkpoint_id"]
            versions = dict(latest.checkpoint["channel_versions"])
        while step < 1_000_000:
            values = expected_values(step)
            new_versions: dict[str, Any] = {}
            for channel in values:
                if channel == "fixed" and channel in versions:
                    continue
                versions[channel] = saver.get_next_version(versions.get(channel), None)
                new_versions[channel] = versions[channel]
            checkpoint: Any = {
                "v": 4,
                "id": f"{seed:08d}-{step:012d}",
                "ts": "2024-01-01T00:00:00+00:00",
                "channel_values": values,
                "channel_versions": dict(versions),
                "versions_seen": {"node": dict(versions)},
                "updated_channels": sorted(new_versions),
            }
            config: dict[str, Any] = {
                "configurable": {**base["configurable"], "checkpoint_id": parent_id}
            }
            stored = await saver.aput(
                config, checkpoint, {"source": "loop", "step": step}, new_versions
            )
            checkpoint_id = stored["configurable"]["checkpoint_id"]
            _say(f"C {thread_id} {step} {checkpoint_id}")
            await asyncio.gather(
                saver.aput_writes(stored, [("out", step), ("log", [step])], "task-a"),
                saver.aput_writes(stored, [("out", -step)], "task-b"),
            )
            _say(f"W {thread_id} {step} {checkpoint_id}")
            parent_id = checkpoint_id
            step += 1


def zygote() -> None:
    _say("zygote-ready")
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] != "run":
            continue
        db, seed, synchronous = parts[1], int(parts[2]), parts[3]
        pid = os.fork()
        if pid == 0:  # the writer
            try:
                asyncio.run(write_forever(db, seed, synchronous))
            finally:
                os._exit(0)
        _say(f"forked {pid}")
        os.waitpid(pid, 0)
        # Only now: every line the writer printed is already in the pipe.
        _say(f"reaped {pid}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--zygote"]:
        zygote()
    else:
        asyncio.run(write_forever(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
