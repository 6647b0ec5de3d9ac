"""Fail points: parsing, inert by default, firing on the Nth hit (in a subprocess for env)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from graph_runtime import failpoints


def test_parse_reads_points_actions_and_counts() -> None:
    plan = failpoints.parse(
        "after_checkpoint=crash, after_step_record=raise:3,open=read_only,"
        "before_publish=disk_full:2:1.5"
    )
    assert plan == {
        "after_checkpoint": ("crash", 1, None),
        "after_step_record": ("raise", 3, None),
        "open": ("read_only", 1, None),
        "before_publish": ("disk_full", 2, 1.5),
    }
    assert failpoints.parse("") == {}


@pytest.mark.parametrize(
    "spec",
    [
        "nowhere=crash",
        "after_checkpoint",
        "after_checkpoint=boom",
        "before_publish=raise:0",
        "open=crash:1:2",  # only storage faults last
        "open=disk_full:1:0",
        "open=disk_full:x",
    ],
)
def test_a_typo_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="bad fail point"):
        failpoints.parse(spec)


def test_inert_without_the_variable() -> None:
    assert "GRAPH_RUNTIME_FAILPOINTS" not in os.environ
    assert failpoints.ENABLED is False
    for point in failpoints.POINTS:
        failpoints.hit(point)  # nothing happens


def _run(code: str, spec: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GRAPH_RUNTIME_FAILPOINTS": spec}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


def test_raise_fires_once_on_the_nth_hit() -> None:
    code = (
        "from graph_runtime import failpoints as f\n"
        "for i in range(1, 6):\n"
        "    try:\n"
        "        f.hit('after_status_write')\n"
        "    except f.FailPointError:\n"
        "        print(i)\n"
    )
    done = _run(code, "after_status_write=raise:3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3"]


def test_crash_kills_the_process_at_once() -> None:
    code = (
        "import atexit\n"
        "from graph_runtime import failpoints as f\n"
        "atexit.register(print, 'atexit ran')\n"
        "f.hit('before_publish')\n"
        "print('survived')\n"
    )
    done = _run(code, "before_publish=crash")
    assert done.returncode == -9
    assert "survived" not in done.stdout and "atexit" not in done.stdout
