"""Owner resolution (pure) and its cache inside the cluster state."""

from __future__ import annotations

from vigil.controller.owners import OwnerFacts, Ref, controller_ref, resolve
from vigil.controller.state import ClusterState


def facts(kind, name, uid, owner=None):
    return OwnerFacts(kind, name, uid, owner, {})


def test_pod_replicaset_deployment():
    lookup = {
        ("ReplicaSet", "web-1"): facts("ReplicaSet", "web-1", "u-rs", Ref("Deployment", "web", "u-d")),
        ("Deployment", "web"): facts("Deployment", "web", "u-d"),
    }
    r = resolve("Pod", "web-1-x", Ref("ReplicaSet", "web-1", "u-rs"), lookup)
    assert (r.top_kind, r.top_name, r.chain) == ("Deployment", "web", (("ReplicaSet", "web-1"),))
    assert r.depends_on == {("ReplicaSet", "web-1"), ("Deployment", "web")}


def test_bare_pod():
    r = resolve("Pod", "p", None, {})
    assert (r.top_kind, r.top_name, r.chain, r.depends_on) == ("Pod", "p", (), frozenset())


def test_unknown_kind_is_the_top_by_kind_and_name():
    lookup = {("ReplicaSet", "ro-1"): facts("ReplicaSet", "ro-1", "u", Ref("Rollout", "ro", "u-ro"))}
    r = resolve("Pod", "p", Ref("ReplicaSet", "ro-1", "u"), lookup)
    assert (r.top_kind, r.top_name, r.chain) == ("Rollout", "ro", (("ReplicaSet", "ro-1"),))


def test_gone_owner_stops_at_nearest_present_owner():
    lookup = {("Job", "j-1"): facts("Job", "j-1", "u-j", Ref("CronJob", "cj", "u-cj"))}
    r = resolve("Pod", "p", Ref("Job", "j-1", "u-j"), lookup)
    assert (r.top_kind, r.top_name, r.chain) == ("Job", "j-1", ())


def test_absent_direct_owner_is_named_by_the_reference():
    r = resolve("Pod", "p", Ref("ReplicaSet", "rs", "u"), {})
    assert (r.top_kind, r.top_name) == ("ReplicaSet", "rs")
    assert r.depends_on == {("ReplicaSet", "rs")}


def test_recreated_owner_with_other_uid_counts_as_gone():
    lookup = {
        ("ReplicaSet", "rs"): facts("ReplicaSet", "rs", "new", Ref("Deployment", "d", "ud")),
        ("Deployment", "d"): facts("Deployment", "d", "ud"),
    }
    r = resolve("Pod", "p", Ref("ReplicaSet", "rs", "old"), lookup)
    assert (r.top_kind, r.top_name) == ("ReplicaSet", "rs")


def test_cycle_terminates():
    lookup = {
        ("ReplicaSet", "a"): facts("ReplicaSet", "a", "ua", Ref("ReplicaSet", "b", "ub")),
        ("ReplicaSet", "b"): facts("ReplicaSet", "b", "ub", Ref("ReplicaSet", "a", "ua")),
    }
    r = resolve("Pod", "p", Ref("ReplicaSet", "a", "ua"), lookup)
    assert r.top_kind == "ReplicaSet" and len(r.chain) <= 16


def test_controller_ref_prefers_controller_flag():
    meta = {
        "ownerReferences": [
            {"kind": "ConfigMap", "name": "c", "uid": "1"},
            {"kind": "Job", "name": "j", "uid": "2", "controller": True},
        ]
    }
    assert controller_ref(meta) == Ref("Job", "j", "2")
    assert controller_ref({"ownerReferences": [{"kind": "Foo", "name": "f"}]}) == Ref("Foo", "f", "")
    assert controller_ref({}) is None


def obj(kind, ns, name, uid, owner=None, labels=None, **extra):
    meta = {"namespace": ns, "name": name, "uid": uid, "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "uid": owner[2], "controller": True}]
    return {"kind": kind, "metadata": meta, **extra}


def pod(name, uid, owner=None, ns="ns"):
    return obj(
        "Pod",
        ns,
        name,
        uid,
        owner,
        spec={"containers": [{"name": "c", "image": "nginx:1"}]},
        status={"phase": "Running"},
    )


def test_owner_arriving_after_pod_resends_the_pod():
    s = ClusterState()
    s.upsert_pod(pod("web-1-x", "p1", ("ReplicaSet", "web-1", "rs1")))
    first = s.build_snapshot("c", "b1")
    s.acknowledge(first)
    assert [(w.kind, w.name) for w in first.workloads] == [("ReplicaSet", "web-1")]
    s.upsert_owner("Deployment", obj("Deployment", "ns", "web", "d1", labels={"app": "web"}))
    s.upsert_owner("ReplicaSet", obj("ReplicaSet", "ns", "web-1", "rs1", ("Deployment", "web", "d1")))
    delta = s.build_delta("c", "b2")
    assert [(p.uid, p.workload.kind, p.workload.name) for p in delta.pods] == [("p1", "Deployment", "web")]
    assert [(w.kind, w.name, [(o.kind, o.name) for o in w.owner_chain], w.labels) for w in delta.workloads] == [
        ("Deployment", "web", [("ReplicaSet", "web-1")], {"app": "web"})
    ]
    assert [(k.kind, k.name) for k in delta.deletes.workloads] == [("ReplicaSet", "web-1")]
    s.acknowledge(delta)
    assert s.build_delta("c", "b3") is None  # nothing left to say


def test_owner_deleted_falls_back_and_workload_goes():
    s = ClusterState()
    s.upsert_owner("CronJob", obj("CronJob", "ns", "cj", "cj1"))
    s.upsert_owner("Job", obj("Job", "ns", "cj-1", "j1", ("CronJob", "cj", "cj1")))
    s.upsert_pod(pod("cj-1-x", "p1", ("Job", "cj-1", "j1")))
    s.acknowledge(s.build_snapshot("c", "b1"))
    assert s.pods["p1"].workload.kind == "CronJob"
    s.delete_owner("CronJob", obj("CronJob", "ns", "cj", "cj1"))
    d = s.build_delta("c", "b2")
    assert [(p.workload.kind, p.workload.name) for p in d.pods] == [("Job", "cj-1")]
    assert [(w.kind, w.name) for w in d.workloads] == [("Job", "cj-1")]
    assert [(k.kind, k.name) for k in d.deletes.workloads] == [("CronJob", "cj")]


def test_delta_upserts_and_deletes_and_relist_replace():
    s = ClusterState()
    s.replace("Node", [{"metadata": {"name": "n1"}}, {"metadata": {"name": "n2"}}])
    s.replace("Pod", [pod("a", "pa"), pod("b", "pb")])
    snap = s.build_snapshot("c", "b1")
    assert [n.name for n in snap.nodes] == ["n1", "n2"] and [p.uid for p in snap.pods] == ["pa", "pb"]
    assert [(w.kind, w.name) for w in snap.workloads] == [("Pod", "a"), ("Pod", "b")]
    s.acknowledge(snap)
    s.apply_event("Pod", "DELETED", pod("a", "pa"))
    s.apply_event("Node", "MODIFIED", {"metadata": {"name": "n2", "labels": {"vigil.dev/sensor": "disabled"}}})
    d = s.build_delta("c", "b2")
    assert d.deletes.pods == ["pa"] and [(k.kind, k.name) for k in d.deletes.workloads] == [("Pod", "a")]
    assert [n.name for n in d.nodes] == ["n2"] and d.nodes[0].sensor_disabled
    s.acknowledge(d)
    s.replace("Pod", [pod("b", "pb"), pod("c", "pc")])
    assert s.snapshot_needed
    snap2 = s.build_snapshot("c", "b3")
    assert [p.uid for p in snap2.pods] == ["pb", "pc"]


def test_unchanged_object_makes_no_delta():
    s = ClusterState()
    s.upsert_pod(pod("a", "pa"))
    s.acknowledge(s.build_snapshot("c", "b1"))
    s.upsert_pod(pod("a", "pa"))
    assert s.build_delta("c", "b2") is None


def test_workload_chain_lists_every_replicaset_nearest_first():
    s = ClusterState()
    s.upsert_owner("Deployment", obj("Deployment", "ns", "d", "d1"))
    for rs in ("d-old", "d-new"):
        s.upsert_owner("ReplicaSet", obj("ReplicaSet", "ns", rs, rs, ("Deployment", "d", "d1")))
    s.upsert_pod(pod("d-new-x", "p1", ("ReplicaSet", "d-new", "d-new")))
    snap = s.build_snapshot("c", "b")
    (w,) = snap.workloads
    assert [(o.kind, o.name) for o in w.owner_chain] == [("ReplicaSet", "d-new"), ("ReplicaSet", "d-old")]


def test_paged_relist_drops_only_what_no_page_listed():
    s = ClusterState()
    s.replace("Pod", [pod("a", "pa"), pod("b", "pb"), pod("c", "pc")])
    s.acknowledge(s.build_snapshot("c", "b1"))
    s.begin_list("Pod")
    assert s.snapshot_needed
    s.add_listed("Pod", [pod("c", "pc")])
    s.add_listed("Pod", [pod("d", "pd")])
    assert set(s.pods) == {"pa", "pb", "pc", "pd"}  # nothing is dropped before the list is complete
    s.finish_list("Pod")
    snap = s.build_snapshot("c", "b2")
    assert [p.uid for p in snap.pods] == ["pc", "pd"]
    assert [(w.kind, w.name) for w in snap.workloads] == [("Pod", "c"), ("Pod", "d")]
    # A list started over (410 on a continuation) forgets the keys of the abandoned pages.
    s.begin_list("Pod")
    s.add_listed("Pod", [pod("c", "pc")])
    s.begin_list("Pod")
    s.add_listed("Pod", [pod("d", "pd")])
    s.finish_list("Pod")
    assert set(s.pods) == {"pd"}
