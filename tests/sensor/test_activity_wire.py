"""The wire's activity records: what they accept and how they refuse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from vigil.wire.runtime import ActivityRecord, ActivitySample, ExecSample, RuntimeBatch

CID = "ab" * 32
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _record(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict(
        container_id=f"containerd://{CID}",
        kind="file_write",
        target="/usr/local/bin/x",
        first_seen=T0,
        last_seen=T0,
        count=1,
    )
    return {**base, **over}


def _batch(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict(
        batch_id="s-1", cluster_id="c", node_name="n", sensor_id="s", seq=1, window_start=T0, window_end=T0
    )
    return {**base, **over}


def test_a_batch_without_activities_is_still_valid() -> None:
    batch = RuntimeBatch.model_validate(_batch())
    assert batch.activities == []
    assert ExecSample(time=T0, pid=1, ppid=0, uid=0, gid=0, filename="/bin/sh").upper_layer is None


def test_activity_record_round_trips_with_samples() -> None:
    sample = ActivitySample(
        time=T0, pid=7, ppid=1, uid=0, comm="cp", exe="/bin/cp", argv=["cp", "a", "b"], parents=["sh", "bash"]
    )
    rec = ActivityRecord(**_record(upper_layer=True, detail={"flags": "O_WRONLY|O_CREAT"}, samples=[sample], count=3))
    batch = RuntimeBatch.model_validate(_batch(activities=[rec.model_dump(mode="json")]))
    assert batch.activities[0] == rec
    assert rec.key == (f"containerd://{CID}", "file_write", "/usr/local/bin/x")
    assert sample.result == 0


def test_activity_rules_name_the_input() -> None:
    with pytest.raises(ValidationError, match="Input should be 'file_write'"):
        ActivityRecord(**_record(kind="file_open"))
    with pytest.raises(ValidationError, match=r"'abc' is not a valid container id \(runtime://id\)"):
        ActivityRecord(**_record(container_id="abc"))
    with pytest.raises(ValidationError, match=r"'XYZ' is not a valid pod uid \(lowercase UUID\)"):
        ActivityRecord(**_record(pod_uid="XYZ"))
    with pytest.raises(
        ValidationError, match="activity file_write /usr/local/bin/x: last_seen .* is before first_seen"
    ):
        ActivityRecord(**_record(last_seen=T0 - timedelta(seconds=1)))
    with pytest.raises(ValidationError, match="String should have at least 1 character"):
        ActivityRecord(**_record(target=""))
    with pytest.raises(ValidationError, match="Input should be greater than or equal to 1"):
        ActivityRecord(**_record(count=0))
    with pytest.raises(ValidationError, match="detail 'name' is longer than 1024 characters"):
        ActivityRecord(**_record(detail={"name": "x" * 1025}))
    with pytest.raises(ValidationError, match="Dictionary should have at most 16 items"):
        ActivityRecord(**_record(detail={f"k{i}": "v" for i in range(17)}))
    with pytest.raises(ValidationError, match="parent name 'xxxxxxxxxxxxxxxxx' is longer than 16 characters"):
        ActivitySample(time=T0, pid=1, ppid=0, uid=0, parents=["x" * 17])
    with pytest.raises(ValidationError, match="List should have at most 8 items"):
        ActivitySample(time=T0, pid=1, ppid=0, uid=0, parents=["sh"] * 9)
    one = ActivityRecord(**_record()).model_dump(mode="json")
    with pytest.raises(
        ValidationError, match=r"activity \('containerd://abab.*', 'file_write', '/usr/local/bin/x'\) appears twice"
    ):
        RuntimeBatch.model_validate(_batch(activities=[one, one]))
