"""The console's admission page (the webhooks' recorded decisions, filtered) and the enforcement policy on the
settings page: shown to everyone, edited by admins as YAML with the parser's exact errors, kept with history
(HTTP against a live service; one check in Debian chromium)."""

from __future__ import annotations

import html as html_lib
import re
import time
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import httpx
import pytest
from tests.admission.reviews import pod, review

from vigil.devtools.admission import WebhookProcess
from vigil.devtools.service import LiveService
from vigil.policy.enforcement import EnforcementPolicy, load_enforcement_yaml
from vigil.policy.enforcement_text import enforcement_yaml
from vigil.service.store.admission import record_decisions
from vigil.service.store.enforcement import enforcement_history, load_enforcement
from vigil.wire.admission import AdmissionDecisionRecord, ViolationRecord

from .conftest import sign_in
from .test_page_width import WIDTH, measure

COOKIE = "vigil_session"
T0 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
UNTRUSTED = (
    'policy "prod" rule untrusted_registry: image evil.example.org/x:1: registry evil.example.org is not trusted '
    "(consulted: trusted registry.example.com/team (global))"
)
UNSCANNED = 'policy "prod" rule unscanned: image registry.example.com/team/api:2: not scanned by Vigil yet'
POLICY = """\
policies:
  - name: prod
    scope: {namespaces: [payments]}
    rules: {unscanned: deny}
  - name: everywhere
    mode: audit
"""


class _Cells(HTMLParser):
    """The rows of one table (by id) as lists of cell texts, whitespace folded."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.depth, self.rows, self.cell = table_id, 0, [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table" and (self.depth or dict(attrs).get("id") == self.table_id):
            self.depth += 1
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag == "td":
            self.cell = []
        elif self.depth and self.cell is not None and tag in ("div", "li"):
            self.cell.append("\0")

    def handle_endtag(self, tag):
        if tag == "table" and self.depth:
            self.depth -= 1
        elif self.depth and tag == "td" and self.cell is not None:
            lines = "".join(self.cell).split("\0")
            self.rows[-1].append(" | ".join(" ".join(x.split()) for x in lines if x.strip()))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def cells(html: str, table_id: str) -> list[list[str]]:
    parser = _Cells(table_id)
    parser.feed(html)
    return [r for r in parser.rows if r]


def text_of(html: str, element_id: str) -> str:
    """The text of the element with this id (tags stripped; it holds no element of its own kind)."""
    match = re.search(rf'<(\w+)[^>]*\sid="{element_id}"[^>]*>(.*?)</\1>', html, re.S)
    assert match, f"no #{element_id} on the page"
    return html_lib.unescape(re.sub(r"<[^>]+>", "", match.group(2)))


def csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def signed_in(svc: LiveService, token: str) -> httpx.Client:
    client = httpx.Client(base_url=svc.url, follow_redirects=False, timeout=60)
    login = client.get("/login")
    resp = client.post("/login", data={"token": token, "csrf": csrf(login.text), "next": "/"})
    assert resp.status_code == 303
    return client


def decision(
    uid: str, minutes: int, namespace: str, kind: str, name: str, outcome: str, **kw
) -> AdmissionDecisionRecord:
    return AdmissionDecisionRecord(
        uid=uid,
        at=T0 + timedelta(minutes=minutes),
        operation="CREATE",
        kind=kind,
        namespace=namespace,
        name=name,
        user=kw.pop("user", "alice@example.com"),
        outcome=outcome,
        **kw,
    )


def violation(rule: str, mode: str, image: str, message: str) -> ViolationRecord:
    return ViolationRecord(policy="prod", mode=mode, rule=rule, image=image, message=message)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    svc = LiveService(tmp_path_factory.mktemp("admission") / "data").start()
    prod, _ = svc.register("prod")
    staging, _ = svc.register("staging")
    with svc.engine.begin() as conn:
        record_decisions(
            conn,
            prod,
            [
                decision(
                    "u1", 0, "payments", "Pod", "web", "denied",
                    images=["evil.example.org/x:1"],
                    violations=[violation("untrusted_registry", "enforce", "evil.example.org/x:1", UNTRUSTED)],
                ),
                decision(
                    "u2", 1, "payments", "Deployment", "api", "warned", user="system:serviceaccount:ci:deployer",
                    images=["registry.example.com/team/api:2"],
                    violations=[violation("unscanned", "warn", "registry.example.com/team/api:2", UNSCANNED)],
                ),
            ],
        )  # fmt: skip
        record_decisions(conn, staging, [decision("u3", 2, "default", "Pod", "", "audited", images=["busybox:1.36"])])
        record_decisions(
            conn,
            prod,
            [
                decision(
                    "u4", 3, "payments", "Pod", "debug", "break_glass", dry_run=True,
                    images=["evil.example.org/x:1"], break_glass="INC-42: restore payments",
                    violations=[violation("untrusted_registry", "enforce", "evil.example.org/x:1", UNTRUSTED)],
                )
            ],
        )  # fmt: skip
    viewer = signed_in(svc, svc.token("viewer", "test-viewer"))
    yield svc, viewer, {"prod": prod, "staging": staging}
    viewer.close()
    svc.stop()


ROWS = {
    "u4": [
        "2026-12-01 09:33:00 UTC", "prod", "payments", "Pod/debug | CREATE", "alice@example.com",
        "break-glass dry run", "evil.example.org/x:1", f"untrusted_registry enforce {UNTRUSTED}",
        "INC-42: restore payments",
    ],
    "u3": [
        "2026-12-01 09:32:00 UTC", "staging", "default", "Pod/(generated name) | CREATE", "alice@example.com",
        "audited", "busybox:1.36", "—", "—",
    ],
    "u2": [
        "2026-12-01 09:31:00 UTC", "prod", "payments", "Deployment/api | CREATE", "system:serviceaccount:ci:deployer",
        "warned", "registry.example.com/team/api:2", f"unscanned warn {UNSCANNED}", "—",
    ],
    "u1": [
        "2026-12-01 09:30:00 UTC", "prod", "payments", "Pod/web | CREATE", "alice@example.com",
        "denied", "evil.example.org/x:1", f"untrusted_registry enforce {UNTRUSTED}", "—",
    ],
}  # fmt: skip


def test_decisions_are_listed_newest_first_with_what_was_decided(world):
    _, viewer, _ = world
    page = viewer.get("/admission")
    assert page.status_code == 200
    assert '<a href="/admission" class="active">Admission</a>' in page.text
    assert cells(page.text, "admission-decisions") == [ROWS[u] for u in ("u4", "u3", "u2", "u1")]
    assert [o.split('"')[0] for o in page.text.split('data-outcome="')[1:]] == [
        "break_glass",
        "audited",
        "warned",
        "denied",
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"cluster": "prod"}, ["u4", "u2", "u1"]),
        ({"cluster": "staging"}, ["u3"]),
        ({"namespace": "payments"}, ["u4", "u2", "u1"]),
        ({"outcome": "denied"}, ["u1"]),
        ({"cluster": "prod", "outcome": "break_glass"}, ["u4"]),
        ({"limit": "25"}, ["u4", "u3", "u2", "u1"]),
    ],
)
def test_filters_narrow_the_decisions(world, query, expected):
    _, viewer, ids = world
    page = viewer.get("/admission", params=query)
    assert cells(page.text, "admission-decisions") == [ROWS[u] for u in expected]
    # The filter form shows the cluster by its id, and the URL may name it either way.
    if "cluster" in query:
        by_id = viewer.get("/admission", params=dict(query, cluster=ids[query["cluster"]]))
        assert cells(by_id.text, "admission-decisions") == [ROWS[u] for u in expected]
        assert f'<option value="{ids[query["cluster"]]}" selected>{query["cluster"]}</option>' in by_id.text


def test_a_filter_matching_nothing_says_so_and_a_bad_one_is_named(world):
    _, viewer, _ = world
    page = viewer.get("/admission", params={"namespace": "kube-system"})
    assert text_of(page.text, "no-decisions") == "No admission decision matches these filters."
    for query, message in (
        (
            {"outcome": "blocked"},
            "outcome: 'blocked' is not one of allowed, denied, warned, audited, break_glass, exempt",
        ),
        ({"cluster": "nosuch"}, "cluster: cluster 'nosuch' is not registered (known: prod, staging)"),
        ({"namespace": "n" * 64}, "namespace: longer than 63 characters"),
    ):
        resp = viewer.get("/admission", params=query)
        assert resp.status_code == 400 and text_of(resp.text, "error-message") == message


def test_pages_go_on_from_the_last_decision_shown(world):
    svc, viewer, ids = world
    more = [decision(f"p{i}", 10 + i, "batch", "Job", f"job-{i}", "audited") for i in range(26)]
    with svc.engine.begin() as conn:
        record_decisions(conn, ids["staging"], more)
    first = viewer.get("/admission", params={"namespace": "batch", "limit": "25"})
    names = [r[3] for r in cells(first.text, "admission-decisions")]
    assert names == [f"Job/job-{i} | CREATE" for i in range(25, 0, -1)]
    older = re.search(r'<a class="next" href="([^"]+)">older »</a>', first.text)
    assert older
    second = viewer.get(html_lib.unescape(older.group(1)))
    assert [r[3] for r in cells(second.text, "admission-decisions")] == ["Job/job-0 | CREATE"]
    assert 'class="next"' not in second.text


@pytest.fixture
def service(tmp_path):
    svc = LiveService(tmp_path / "data").start()
    admin = signed_in(svc, svc.admin_token)
    viewer = signed_in(svc, svc.token("viewer", "test-viewer"))
    yield svc, admin, viewer
    admin.close()
    viewer.close()
    svc.stop()


def test_everyone_sees_the_default_policy_and_only_admins_get_the_form(service):
    _, admin, viewer = service
    default = EnforcementPolicy()
    page = viewer.get("/settings")
    assert text_of(page.text, "enforcement-state") == (
        f"Revision {default.revision}: the default policy, never changed. "
        "The admission webhooks apply a new revision within seconds; their decisions are recorded."
    )
    assert text_of(page.text, "enforcement-yaml") == enforcement_yaml(default)
    assert 'id="edit-enforcement"' not in page.text
    assert text_of(page.text, "no-enforcement-history") == (
        "No revision has been stored: the default policy applies (system namespaces exempt, nothing enforced)."
    )
    page = admin.get("/settings")
    assert (
        '<form method="post" action="/settings/enforcement" class="policy-editor" id="edit-enforcement">' in page.text
    )
    assert text_of(page.text, "enforcement-yaml") == enforcement_yaml(default)


def test_an_admin_edit_stores_a_new_revision_kept_in_the_history(service):
    svc, admin, viewer = service
    page = admin.get("/settings")
    done = admin.post("/settings/enforcement", data={"csrf": csrf(page.text), "policy": POLICY})
    assert done.status_code == 303 and done.headers["location"] == "/settings#enforcement"
    expected = load_enforcement_yaml(POLICY, "test")
    with svc.engine.connect() as conn:
        stored = load_enforcement(conn)
    assert (stored.policy, stored.revision, stored.updated_by) == (expected, expected.revision, "console:test-admin")
    page = viewer.get("/settings")
    assert text_of(page.text, "enforcement-revision") == expected.revision
    assert text_of(page.text, "enforcement-updated-by") == "console:test-admin"
    assert text_of(page.text, "enforcement-yaml") == enforcement_yaml(expected)
    when = stored.updated_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert cells(page.text, "enforcement-history") == [
        [
            expected.revision,
            when,
            "console:test-admin",
            "prod: enforce everywhere: audit",
            "YAML" + " ".join(enforcement_yaml(expected).split()),  # the summary, then the document
        ]
    ]

    # The same policy again stores nothing; another one is a second revision, newest first.
    page = admin.get("/settings")
    same = admin.post("/settings/enforcement", data={"csrf": csrf(page.text), "policy": enforcement_yaml(expected)})
    assert same.status_code == 200
    assert text_of(same.text, "enforcement-notice") == f"unchanged: the policy is already revision {expected.revision}"
    admin.post("/settings/enforcement", data={"csrf": csrf(page.text), "policy": "policies: []"})
    with svc.engine.connect() as conn:
        history = enforcement_history(conn)
    assert [h.revision for h in history] == [EnforcementPolicy().revision, expected.revision]
    rows = cells(admin.get("/settings").text, "enforcement-history")
    assert [r[0] for r in rows] == [h.revision for h in history] and rows[0][3] == "none"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("policies: [", "enforcement policy in the form: not valid YAML at line 1, column 12"),
        (
            "policies: [{name: prod, mode: block}]",
            "enforcement policy in the form: policies[0].mode: Input should be 'enforce', 'warn' or 'audit'",
        ),
        (
            "policies: [{name: Prod}]",
            "enforcement policy in the form: policies[0].name: 'Prod' must be lower-case letters, digits and '-', "
            "at most 63 characters",
        ),
        ("exempt: [default]", "enforcement policy in the form: exempt: Extra inputs are not permitted"),
        ("x" * (16 * 1024 + 1), "policy: longer than 16384 characters"),
    ],
)
def test_a_bad_policy_shows_the_parsers_error_and_keeps_the_text(service, text, message):
    svc, admin, _ = service
    page = admin.get("/settings")
    resp = admin.post("/settings/enforcement", data={"csrf": csrf(page.text), "policy": text})
    assert resp.status_code == 400
    assert text_of(resp.text, "enforcement-error") == message
    assert '<textarea id="enforcement-yaml" name="policy"' in resp.text and 'aria-invalid="true"' in resp.text
    assert text_of(resp.text, "enforcement-yaml") == text[: 16 * 1024]
    with svc.engine.connect() as conn:
        assert enforcement_history(conn) == []


def test_a_viewer_and_a_forged_form_cannot_change_the_policy(service):
    svc, admin, viewer = service
    page = viewer.get("/settings")
    refused = viewer.post("/settings/enforcement", data={"csrf": csrf(page.text), "policy": POLICY})
    assert refused.status_code == 403
    assert text_of(refused.text, "error-message") == (
        "Signed in as test-viewer with role viewer: this needs an admin token."
    )
    forged = admin.post("/settings/enforcement", data={"policy": POLICY})
    assert forged.status_code == 403
    assert text_of(forged.text, "error-message").startswith("This form was not sent from this console session")
    with svc.engine.connect() as conn:
        assert enforcement_history(conn) == []


def test_in_the_browser_an_admin_saves_the_policy_and_long_decisions_fit(browser, world, output_dir):
    svc, _, ids = world
    long_ref = "harbor.platform-engineering.internal.example.com/observability-platform/" + "collector-" * 6 + ":0.96.0"
    message = (
        f'policy "prod" rule untrusted_registry: image {long_ref}: '
        "registry harbor.platform-engineering.internal.example.com is not trusted"
    )
    with svc.engine.begin() as conn:
        record_decisions(
            conn,
            ids["prod"],
            [
                decision(
                    "wide", 60, "observability-platform-production", "Deployment", "opentelemetry-collector-" * 3,
                    "denied", user="system:serviceaccount:argocd:argocd-application-controller",
                    images=[long_ref, long_ref + "-sidecar"],
                    violations=[violation("untrusted_registry", "enforce", long_ref, message)] * 3,
                )
            ],
        )  # fmt: skip
    ctx, page = sign_in(browser, svc.url, svc.admin_token)
    page.set_viewport_size({"width": WIDTH, "height": 800})
    try:
        width, scrolling = measure(page, f"{svc.url}/admission")
        assert width <= WIDTH and scrolling == []
        page.screenshot(path=str(output_dir / "admission.png"), full_page=True)
        page.goto(f"{svc.url}/settings#enforcement")
        page.fill("#enforcement-yaml", "policies: [{name: prod, mode: warn}]")
        page.click("#edit-enforcement button[type=submit]")
        page.wait_for_url(f"{svc.url}/settings#enforcement")
        revision = load_enforcement_yaml("policies: [{name: prod, mode: warn}]", "t").revision
        assert page.locator("#enforcement-revision").inner_text() == revision
        assert page.locator("#enforcement-history tbody tr").first.get_attribute("data-revision") == revision
        width, scrolling = measure(page, f"{svc.url}/settings")
        assert width <= WIDTH and scrolling == []
        page.screenshot(path=str(output_dir / "settings-enforcement.png"), full_page=True)
    finally:
        ctx.close()


def test_a_policy_change_made_in_the_console_reaches_the_webhooks_decisions_within_two_seconds(service, tmp_path):
    svc, admin, _ = service
    svc.trust_registry("registry.example.com/team")
    cluster_id, credential = svc.register("prod")
    issued = httpx.post(
        f"{svc.url}/api/v1/clusters/{cluster_id}/admission-credential",
        json={},
        headers={"Authorization": f"Bearer {credential}"},
        timeout=30,
    )
    issued.raise_for_status()
    page = admin.get("/settings")
    enforce = "policies: [{name: prod, mode: enforce, scope: {namespaces: [shop]}}]"
    assert admin.post("/settings/enforcement", data={"csrf": csrf(page.text), "policy": enforce}).status_code == 303
    with WebhookProcess(tmp_path / "webhook", svc.url, cluster_id, issued.json()["credential"]) as webhook:
        hook = httpx.Client(base_url=webhook.url, verify=webhook.ssl_context(), timeout=5)

        def allowed() -> bool:
            answer = hook.post("/validate", json=review(pod("evil.example.org/x:1", namespace="shop"))).json()
            return answer["response"]["allowed"]

        assert not allowed()
        started = time.monotonic()
        warn = admin.post(
            "/settings/enforcement",
            data={"csrf": csrf(page.text), "policy": enforce.replace("enforce", "warn")},
        )
        assert warn.status_code == 303
        while not allowed():
            assert time.monotonic() - started < 2.0, "the webhook still denies 2 s after the console's change"
        hook.close()
