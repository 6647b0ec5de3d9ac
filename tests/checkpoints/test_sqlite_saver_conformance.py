"""The official langgraph-checkpoint-conformance suite against FastSqliteSaver."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Literal

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.checkpoint.conformance.report import ProgressCallbacks

from checkpoints.sqlite_saver import FastSqliteSaver


# Both places commits can run: on the event loop (default for synchronous=NORMAL) and on
# the writer thread (default for FULL).
@pytest.mark.parametrize("writer", ["loop", "thread"])
async def test_conformance_full(tmp_path: Path, writer: Literal["loop", "thread"]) -> None:
    counter = iter(range(1000))

    @checkpointer_test(name=f"FastSqliteSaver-{writer}")
    async def factory() -> AsyncGenerator[FastSqliteSaver, None]:
        # A fresh file per capability suite, as the runner expects a fresh saver.
        async with FastSqliteSaver.from_path(
            tmp_path / f"conformance-{next(counter)}" / "lg.sqlite", writer=writer
        ) as saver:
            yield saver

    failures: list[str] = []

    def on_result(capability: str, test: str, passed: bool, error: str | None) -> None:
        if not passed:
            failures.append(f"{capability}.{test}:\n{error}")

    report = await validate(factory, progress=ProgressCallbacks(on_test_result=on_result))
    assert not failures, "\n\n".join(failures)
    # Every capability, base and extended, is implemented and passes.
    detected = {name for name, r in report.results.items() if r.detected}
    assert detected == {c.value for c in ALL_CAPABILITIES}
    assert report.conformance_level() == "FULL", report.to_dict()
    for name, result in report.results.items():
        assert result.tests_failed == 0 and result.tests_passed > 0, (name, result)
