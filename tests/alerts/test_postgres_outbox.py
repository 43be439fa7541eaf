"""On PostgreSQL a transaction can commit after one that took a later event id: the outbox must
deliver both, and move past ids that a rolled-back transaction left unused."""

from __future__ import annotations

import time

from vigil.devtools.service import LiveService
from vigil.service.jobs.alerts import Dispatcher
from vigil.service.store.findings import observe

from .conftest import LOOPBACK, WEBHOOK_SECRET, add_output, api, drift, last_event, record


def test_out_of_order_commits_are_delivered_and_rollback_holes_passed(postgres, tmp_path, webhook):
    postgres.reset()
    svc = LiveService(tmp_path / "data", postgres.url).start()
    try:
        cid, _ = svc.register("prod-eu")
        out = add_output(svc, name="hook", kind="webhook", url=webhook.url, secret=WEBHOOK_SECRET, threshold="low")
        dispatcher = Dispatcher(svc.engine, gap_grace=0.5, destinations=LOOPBACK)

        slow = svc.engine.connect()
        tx = slow.begin()
        observe(slow, drift(cid, "/tmp/slow"))  # takes the earlier event id, commits last
        fast = record(svc, drift(cid, "/tmp/fast"))
        assert dispatcher.dispatch_once().delivered == 1
        tx.commit()
        slow.close()
        assert dispatcher.dispatch_once().delivered == 1
        assert [r.json()["finding"]["subject"] for r in webhook.requests] == ["/tmp/fast", "/tmp/slow"]
        assert api(svc, "GET", f"/api/v1/alerts/outputs/{out['id']}").json()["cursor"] == last_event(svc, fast).id

        doomed = svc.engine.connect()
        tx = doomed.begin()
        observe(doomed, drift(cid, "/tmp/rolled-back"))
        tx.rollback()
        doomed.close()
        after = record(svc, drift(cid, "/tmp/after"))
        after_id = last_event(svc, after).id
        assert dispatcher.dispatch_once().delivered == 1
        # the hole below /tmp/after may still be a transaction in flight: the cursor waits ...
        assert api(svc, "GET", f"/api/v1/alerts/outputs/{out['id']}").json()["cursor"] == after_id - 2
        time.sleep(0.6)
        assert dispatcher.dispatch_once().delivered == 0
        # ... then passes it after the grace period
        assert api(svc, "GET", f"/api/v1/alerts/outputs/{out['id']}").json()["cursor"] == after_id
        assert [r.json()["finding"]["subject"] for r in webhook.requests] == ["/tmp/fast", "/tmp/slow", "/tmp/after"]
    finally:
        svc.stop()
