"""kill -9 a process writing checkpoints, 50 times; nothing acknowledged may be lost.

A writer process (``_crash_writer.py``) saves checkpoints and pending writes in a loop
and prints each checkpoint ID only after ``aput`` (``aput_writes``) returned. The test
SIGKILLs it at a random moment, then checks that the database passes ``PRAGMA
integrity_check`` and that every printed checkpoint is readable with the values it was
saved with. All 50 writers share one database file, so each one also starts by
recovering the WAL its predecessor left behind and continues its threads.

Writers are forked from a helper process that has already imported LangGraph (a fresh
interpreter takes most of a second to start), so 50 kills take ~10 s; a second test
kills a plain ``python _crash_writer.py`` subprocess once. Every fifth writer uses
``synchronous="FULL"``, i.e. commits on the writer thread instead of the event loop.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from checkpoints.sqlite_saver import FastSqliteSaver

HELPER = Path(__file__).with_name("_crash_writer.py")
sys.path.insert(0, str(HELPER.parent))
from _crash_writer import expected_values  # noqa: E402

KILLS = 50


class _Lines:
    """Lines of a pipe, read by a daemon thread so waits can time out."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self._queue.put(raw.decode().rstrip("\n"))
        self._queue.put(None)

    def get(self, timeout: float = 20.0) -> str:
        line = self._queue.get(timeout=timeout)
        if line is None:
            raise EOFError("writer process closed its output")
        return line


def _verify(
    db: Path, acked: dict[str, tuple[str, int]], written: set[str], rng: random.Random
) -> None:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    if not acked:
        return
    # Everything the last writer acknowledged, plus a sample of what earlier ones did
    # (all of it would make the test quadratic).
    ids = list(acked)
    check = ids[-400:] + rng.sample(ids[:-400], min(100, len(ids[:-400])))
    with FastSqliteSaver.open(db) as saver:
        for checkpoint_id in check:
            thread_id, step = acked[checkpoint_id]
            tup = saver.get_tuple(
                {
                    "configurable": {
                        "thread_id": thread_id,
                        "checkpoint_ns": "",
                        "checkpoint_id": checkpoint_id,
                    }
                }
            )
            assert tup is not None, f"acknowledged checkpoint {checkpoint_id} lost"
            assert tup.checkpoint["channel_values"] == expected_values(step)
            assert tup.metadata["step"] == step
            if checkpoint_id in written:
                got = sorted((t, c, repr(v)) for t, c, v in tup.pending_writes or [])
                assert got == sorted(
                    [
                        ("task-a", "out", repr(step)),
                        ("task-a", "log", repr([step])),
                        ("task-b", "out", repr(-step)),
                    ]
                )


def _collect(line: str, acked: dict[str, tuple[str, int]], written: set[str]) -> None:
    kind, thread_id, step, checkpoint_id = line.split()
    if kind == "C":
        acked[checkpoint_id] = (thread_id, int(step))
    elif kind == "W":
        written.add(checkpoint_id)


@pytest.mark.timeout(90)
def test_kill_9_never_loses_an_acknowledged_checkpoint(tmp_path: Path) -> None:
    db = tmp_path / "crash" / "checkpoints.sqlite"
    rng = random.Random(int(os.environ.get("CRASH_SEED", "1234")))
    zygote = subprocess.Popen(
        [sys.executable, str(HELPER), "--zygote"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        bufsize=0,
    )
    assert zygote.stdin is not None and zygote.stdout is not None
    lines = _Lines(zygote.stdout)
    acked: dict[str, tuple[str, int]] = {}
    written: set[str] = set()
    killed_with_progress = 0
    try:
        assert lines.get(timeout=60) == "zygote-ready"
        for seed in range(KILLS):
            synchronous = "FULL" if seed % 5 == 4 else "NORMAL"
            zygote.stdin.write(f"run {db} {seed} {synchronous}\n".encode())
            zygote.stdin.flush()
            first = lines.get()
            assert first.startswith("forked "), first
            pid = int(first.split()[1])
            # Random point: during start-up and schema creation, or mid-stream.
            time.sleep(rng.uniform(0.0, 0.12))
            before = len(acked)
            os.kill(pid, signal.SIGKILL)
            while True:
                line = lines.get()
                if line == f"reaped {pid}":
                    break
                _collect(line, acked, written)
            killed_with_progress += len(acked) > before
            _verify(db, acked, written, rng)
    finally:
        zygote.stdin.close()
        zygote.wait(timeout=30)
    # The kills landed while checkpoints were being written, not only at start-up.
    assert killed_with_progress >= KILLS // 2, killed_with_progress
    assert len(acked) > 200


def test_kill_9_plain_subprocess(tmp_path: Path) -> None:
    """Same check without the fork server: a fresh interpreter, killed mid-stream."""
    db = tmp_path / "plain.sqlite"
    proc = subprocess.Popen(
        [sys.executable, str(HELPER), str(db), "7", "NORMAL"], stdout=subprocess.PIPE, bufsize=0
    )
    assert proc.stdout is not None
    lines = _Lines(proc.stdout)
    acked: dict[str, tuple[str, int]] = {}
    written: set[str] = set()
    try:
        # wait until it is streaming, then kill at a random point shortly after
        _collect(lines.get(timeout=60), acked, written)
        time.sleep(random.uniform(0.0, 0.05))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    while True:
        try:
            _collect(lines.get(timeout=5), acked, written)
        except EOFError:
            break
    _verify(db, acked, written, random.Random(0))
    assert acked
