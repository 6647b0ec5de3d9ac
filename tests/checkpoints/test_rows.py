"""JSON columns: what the store writes for values JSON cannot hold as they are."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from checkpoints._rows import json_dumps, json_loads


@dataclasses.dataclass
class Point:
    x: int


def test_json_columns_round_trip_plain_values_compactly() -> None:
    value = {"a": [1, 2.5, None, True], "é": "ü", "nested": {"k": []}}
    assert json_dumps(value) == '{"a":[1,2.5,null,true],"é":"ü","nested":{"k":[]}}'
    assert json_loads(json_dumps(value)) == value
    assert json_loads(json_dumps(value).encode()) == value
    assert json_loads({"already": "decoded"}) == {"already": "decoded"}


def test_datetimes_and_dataclasses_are_stored_as_their_str() -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert json.loads(json_dumps({"t": when, "p": Point(1)})) == {
        "t": str(when),
        "p": "Point(x=1)",
    }


def test_what_orjson_refuses_still_gets_stored() -> None:
    assert json_loads(json_dumps({"n": 2**70})) == {"n": 2**70}
    assert json_loads(json_dumps({1: "one"})) == {"1": "one"}
    # Text written by the standard library with NaN still reads back.
    assert json_loads('{"f": NaN}')["f"] != json_loads('{"f": NaN}')["f"]
    assert json_loads(json_dumps({"f": float("nan")})) == {"f": None}
