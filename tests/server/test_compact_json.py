"""``compact_json``: one compact UTF-8 line, whatever the values hold."""

from __future__ import annotations

import datetime as dt
import json

from server.agent_protocol.streaming import compact_json


def test_plain_values_are_compact_utf8() -> None:
    assert compact_json({"a": [1, 2.5, None, True], "é": "ü"}) == (
        '{"a":[1,2.5,null,true],"é":"ü"}'.encode()
    )


def test_what_orjson_refuses_goes_through_the_standard_library() -> None:
    huge = 2**70
    assert json.loads(compact_json({"n": huge})) == {"n": huge}
    assert json.loads(compact_json({1: "one"})) == {"1": "one"}


def test_what_json_cannot_hold_becomes_its_str() -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)

    class Thing:
        def __str__(self) -> str:
            return "a thing"

    assert json.loads(compact_json({"when": when, "thing": Thing()})) == {
        "when": "2026-01-02T03:04:05+00:00",
        "thing": "a thing",
    }
    assert json.loads(compact_json({"big": 2**70, "thing": Thing()})) == {
        "big": 2**70,
        "thing": "a thing",
    }
