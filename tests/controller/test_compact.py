"""Compact wire models: equal to what validation made, the same JSON, and smaller where it counts."""

from __future__ import annotations

import copy

from vigil.controller.compact import compact
from vigil.controller.convert import pod_to_wire
from vigil.wire.inventory import SecurityFacts

from .conftest import k8s_objects


def real_pods() -> dict[str, dict]:
    return {n: o for n, o in k8s_objects("pods").items() if o.get("kind") == "Pod" and o["metadata"].get("uid")}


def test_compact_pods_are_equal_serialize_the_same_and_share_what_repeats():
    pods = real_pods()
    assert len(pods) >= 5
    for name, raw in pods.items():
        made = pod_to_wire(raw, "Deployment", "web")
        small = compact(made, (SecurityFacts,))
        assert small == made, name
        assert small.model_dump_json() == made.model_dump_json(), name
        assert small.model_fields_set == made.model_fields_set, name
    # Two replicas of one template: separate validated models, one shared security summary, one
    # shared fields-set per model type, the same image string object.
    raw = next(o for o in pods.values() if o["spec"].get("containers"))
    other = copy.deepcopy(raw)
    other["metadata"]["uid"] = "another-uid"
    a = compact(pod_to_wire(raw, "Deployment", "web"), (SecurityFacts,))
    b = compact(pod_to_wire(other, "Deployment", "web"), (SecurityFacts,))
    assert a.security is b.security
    assert a.model_fields_set is b.model_fields_set
    assert a.containers[0].model_fields_set is b.containers[0].model_fields_set
    assert a.containers[0].image is b.containers[0].image
    assert a.uid != b.uid


def test_a_copy_with_an_update_leaves_the_shared_fields_set_alone():
    raw = next(o for o in real_pods().values() if o["spec"].get("containers"))
    a = compact(pod_to_wire(raw, "Deployment", "web"))
    b = compact(pod_to_wire(raw, "Deployment", "web"))
    shared = set(a.model_fields_set)
    moved = a.model_copy(update={"phase": "Failed"})
    assert moved.phase == "Failed" and a.phase != "Failed"
    assert b.model_fields_set == shared and a.model_fields_set == shared
