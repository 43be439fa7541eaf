"""Policy and settings: trusted registries and mirrors, the enforcement policy, runtime prevention (each node's
enforcement state, the deny list), alert outputs, API and registration tokens.

Everyone signed in sees the trust policy and the enforcement policy with its history; admins change them
(add or remove a trusted pattern, a mirror rule or a signature rule; replace the enforcement policy's YAML), see alert
outputs (masked, as the admin-only alerts API shows them) and remove them,
and manage tokens. Every change is a CSRF-checked POST.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import orjson
from fastapi import APIRouter, Depends, Request
from sqlalchemy import Connection, select
from starlette.concurrency import run_in_threadpool

from vigil.clock import as_utc
from vigil.policy.enforcement import EnforcementPolicyError, RuntimeMode, RuntimeRules, load_enforcement_yaml
from vigil.policy.enforcement_text import enforcement_yaml
from vigil.policy.prevention import unreachable_runtime_rules
from vigil.policy.trust import InvalidPattern, Pattern
from vigil.service.jobs.alerts.outputs.listing import list_output_views
from vigil.service.store import alerts as alert_store
from vigil.service.store import enforcement as enforcement_store
from vigil.service.store import policy as policy_store
from vigil.service.store import prevention as prevention_store
from vigil.service.store.schema import clusters
from vigil.service.store.sessions import end_token_sessions
from vigil.service.store.tokens import (
    USER_ROLES,
    issue_token,
    list_tokens,
    revoke_token,
)
from vigil.service.ui import params, web
from vigil.service.ui.pages.signature_form import SignatureFormError, rule_from_form
from vigil.service.ui.pages.signature_form import form_values as signature_form_values

router = APIRouter()
log = logging.getLogger("vigil.console")
TOKEN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.@:-]{0,127}$")
MAX_TTL_HOURS = 24 * 365
RULE_KINDS = ("trusted", "mirror")
MAX_PATTERN = 512
# Form-encoded (at most 3 bytes a character) it stays within the 64 KiB the service reads of a console form.
MAX_POLICY_TEXT = 16 * 1024
HISTORY_SHOWN = 20
SHA256 = re.compile(r"[0-9a-f]{64}\Z")
RUNTIME_MODES = tuple(m.value for m in RuntimeMode)
# How an error of the edit form names what was posted (load_enforcement_yaml puts it after "enforcement policy").
FORM_SOURCE = "in the form"


def _trust(conn: Connection) -> dict:
    """The stored trust policy: its rules (global first, then per cluster), its revision, and the
    clusters a new rule can be scoped to."""
    listed = policy_store.list_rules(conn)
    # Signature rules are shown apart: they have a namespace and requirements rather than a mirror.
    signatures = [r for r in listed if r["kind"] == "signatures"]
    rules = [r for r in listed if r["kind"] != "signatures"]
    for r in listed:
        r["created_at"] = as_utc(r["created_at"]).isoformat() if r["created_at"] else None
    rules.sort(
        key=lambda r: (
            r["cluster"] is not None,
            r["cluster"] or "",
            r["kind"] != "trusted",
            r["pattern"],
            r["mirror"] or "",
        )
    )
    return {
        "rules": rules,
        "signatures": signatures,
        "revision": policy_store.load_policy(conn).revision,
        "clusters": [name for (name,) in conn.execute(select(clusters.c.name).order_by(clusters.c.name))],
    }


def _revision(stored: enforcement_store.StoredEnforcement) -> dict:
    return {
        "runtime": [(p.name, str(p.mode), {k: str(m) for k, m in p.runtime}) for p in stored.policy.policies],
        "revision": stored.revision,
        "updated_at": as_utc(stored.updated_at).isoformat() if stored.updated_at else None,
        "updated_by": stored.updated_by,
        "yaml": enforcement_yaml(stored.policy),
        "policies": [(p.name, str(p.mode)) for p in stored.policy.policies],
        "warnings": unreachable_runtime_rules(stored.policy),
    }


def _enforcement(conn: Connection) -> dict:
    """The stored enforcement policy (its YAML, revision, who changed it last) and its latest revisions."""
    current = _revision(enforcement_store.load_enforcement(conn))
    current["history"] = [_revision(r) for r in enforcement_store.enforcement_history(conn, limit=HISTORY_SHOWN)]
    return current


def _page(
    request: Request,
    v: web.Viewer,
    issued=None,
    error: str | None = None,
    status: int = 200,
    notice: str | None = None,
    form=None,
    enforcement_error: str | None = None,
    enforcement_notice: str | None = None,
    enforcement_text: str | None = None,
    deny_error: str | None = None,
    deny_form=None,
    signature_error: str | None = None,
    signature_form=None,
):
    with request.app.state.engine.connect() as conn:
        tokens = list_tokens(conn, USER_ROLES + ("registration",)) if v.is_admin else []
        trust = _trust(conn)
        enforcement = _enforcement(conn)
        alerts = list_output_views(conn) if v.is_admin else None
        deny = {
            "entries": prevention_store.deny_entries(conn),
            "history": prevention_store.deny_history(conn, HISTORY_SHOWN),
        }
        runtime_nodes = prevention_store.node_enforcement(conn)
        cluster_names = {row.id: row.name for row in conn.execute(select(clusters.c.id, clusters.c.name))}
    return web.render(
        request,
        "settings.html",
        v,
        status=status,
        user_tokens=[t for t in tokens if t["role"] in USER_ROLES],
        registration_tokens=[t for t in tokens if t["role"] == "registration"],
        trust=trust,
        enforcement=enforcement,
        # After a refusal the form keeps what the admin typed; otherwise it holds the stored policy.
        enforcement_text=enforcement["yaml"] if enforcement_text is None else enforcement_text,
        enforcement_error=enforcement_error,
        enforcement_notice=enforcement_notice,
        alerts=alerts,
        deny=deny,
        deny_error=deny_error,
        deny_form={k: str(deny_form.get(k) or "") for k in ("sha256", "reason")} if deny_form is not None else {},
        signature_error=signature_error,
        signature_form=signature_form_values(signature_form),
        runtime_nodes=runtime_nodes,
        cluster_names=cluster_names,
        issued=issued,
        error=error,
        notice=notice,
        # What the admin typed, put back into the trust form after a refusal.
        form={k: str(form.get(k) or "") for k in ("kind", "pattern", "mirror", "cluster")} if form is not None else {},
    )


@router.get("/settings")
def settings(request: Request, v: web.Viewer = Depends(web.viewer)):
    return _page(request, v)


@router.post("/settings/tokens")
async def create_token(request: Request, v: web.Viewer = Depends(web.viewer)):
    form, _ = await web.checked_form(request)
    web.require_admin(v)
    role = str(form.get("role") or "")
    name = str(form.get("name") or "").strip()
    if role not in USER_ROLES + ("registration",):
        return _page(request, v, error=f"role {role!r} is not one of admin, viewer, registration", status=400)
    if not TOKEN_NAME.match(name):
        return _page(
            request,
            v,
            error="name must be 1-128 characters: letters, digits, space and _ . @ : - "
            "(starting with a letter or digit)",
            status=400,
        )
    ttl = max_uses = None
    if role == "registration":
        try:
            hours = int(str(form.get("ttl_hours") or "24"))
            max_uses = int(str(form.get("max_uses"))) if form.get("max_uses") else None
        except ValueError:
            return _page(request, v, error="ttl_hours and max_uses must be whole numbers", status=400)
        if not 1 <= hours <= MAX_TTL_HOURS or (max_uses is not None and max_uses < 1):
            return _page(request, v, error=f"ttl_hours must be 1..{MAX_TTL_HOURS} and max_uses at least 1", status=400)
        ttl = timedelta(hours=hours)

    def work():
        with request.app.state.engine.begin() as conn:
            return issue_token(conn, role=role, name=name, ttl=ttl, max_uses=max_uses)

    tok = await run_in_threadpool(work)
    log.info("token created in console", extra={"token_id": tok.id, "role": role, "by": v.principal.token_id})
    # The secret is shown once, in this response only; it is never put in a URL or a log.
    return _page(request, v, issued=tok, status=201)


@router.post("/settings/tokens/{token_id}/revoke")
async def revoke(token_id: str, request: Request, v: web.Viewer = Depends(web.viewer)):
    await web.checked_form(request)
    web.require_admin(v)

    def work() -> bool:
        with request.app.state.engine.begin() as conn:
            if not revoke_token(conn, token_id):
                return False
            end_token_sessions(conn, token_id)
            return True

    if not await run_in_threadpool(work):
        return _page(request, v, error=f"token {token_id!r} does not exist or is already revoked", status=404)
    log.info("token revoked in console", extra={"token_id": token_id, "by": v.principal.token_id})
    return web.redirect("/settings")


class RuleError(ValueError):
    """A trust form field that breaks a rule; the message starts with the field's name."""


def _pattern_field(form, field: str) -> Pattern:
    text = str(form.get(field) or "")
    if len(text) > MAX_PATTERN:
        raise RuleError(f"{field}: longer than {MAX_PATTERN} characters")
    try:
        return Pattern.parse(text)
    except InvalidPattern as exc:
        raise RuleError(f"{field}: {exc}") from None


def _rule_from_form(conn, form, new: bool) -> tuple[str, Pattern, Pattern | None, str | None]:
    kind = str(form.get("kind") or "")
    if kind not in RULE_KINDS:
        raise RuleError(f"kind: {kind!r} is not one of {', '.join(RULE_KINDS)}")
    pattern = _pattern_field(form, "pattern")
    mirror = _pattern_field(form, "mirror") if kind == "mirror" else None
    return kind, pattern, mirror, _cluster_field(conn, form, new)


def _cluster_field(conn: Connection, form, new: bool) -> str | None:
    cluster = str(form.get("cluster") or "").strip() or None
    if len(cluster or "") > 253:
        raise RuleError("cluster: longer than 253 characters")
    # A new rule names a registered cluster; a stored rule may name one the CLI added before it registered.
    if new and cluster is not None:
        known = set(conn.execute(select(clusters.c.name)).scalars())
        if cluster not in known:
            raise RuleError(
                f"cluster: {cluster!r} is not a registered cluster's name (leave it empty for every cluster)"
            )
    return cluster


def _describe(kind: str, pattern: Pattern, mirror: Pattern | None, cluster: str | None) -> str:
    what = f"trusted {pattern}" if kind == "trusted" else f"mirror {pattern} -> {mirror}"
    return f"{what} ({'cluster ' + cluster if cluster else 'global'})"


async def _change_rule(request: Request, fields, actor: str, adding: bool) -> tuple[bool, str]:
    """Add or remove the rule ``fields`` name, in one transaction off the event loop: (changed, what)."""

    def work() -> tuple[bool, str]:
        with request.app.state.engine.begin() as conn:
            kind, pattern, mirror, cluster = _rule_from_form(conn, fields, new=adding)
            if mirror is None:  # a trusted rule: only a mirror rule has a mirror
                trusted = policy_store.add_trusted if adding else policy_store.remove_trusted
                changed = trusted(conn, pattern, cluster, actor)
            else:
                mirrored = policy_store.add_mirror if adding else policy_store.remove_mirror
                changed = mirrored(conn, pattern, mirror, cluster, actor)
            return changed, _describe(kind, pattern, mirror, cluster)

    return await run_in_threadpool(work)


@router.post("/settings/trust")
async def add_rule(request: Request, v: web.Viewer = Depends(web.viewer)):
    form, _ = await web.checked_form(request)
    web.require_admin(v)
    try:
        added, what = await _change_rule(request, form, f"console:{v.principal.name}", adding=True)
    except RuleError as exc:
        return _page(request, v, error=str(exc), status=400, form=form)
    if not added:
        return _page(request, v, notice=f"already in the policy: {what}")
    _policy_changed(request)
    log.info("trust rule added in console", extra={"rule": what, "by": v.principal.token_id})
    return web.redirect("/settings#trust")


def _posted_rule(form) -> dict:
    """The rule a row's remove button names, as JSON in the button's value (one control names the
    whole rule); API-style clients may post the four fields instead."""
    raw = form.get("rule")
    if raw is None:
        return {k: form.get(k) for k in ("kind", "pattern", "mirror", "cluster")}
    try:
        rule = orjson.loads(str(raw))
    except orjson.JSONDecodeError:
        rule = None
    if not isinstance(rule, dict) or not all(
        isinstance(rule.get(k, ""), str) for k in ("kind", "pattern", "mirror", "cluster")
    ):
        raise RuleError("rule: must be an object of kind, pattern, mirror and cluster strings")
    return rule


@router.post("/settings/trust/remove")
async def remove_rule(request: Request, v: web.Viewer = Depends(web.viewer)):
    form, _ = await web.checked_form(request)
    web.require_admin(v)
    try:
        fields = _posted_rule(form)
    except RuleError as exc:
        return _page(request, v, error=str(exc), status=400)
    try:
        removed, what = await _change_rule(request, fields, f"console:{v.principal.name}", adding=False)
    except RuleError as exc:
        return _page(request, v, error=str(exc), status=400)
    if not removed:
        return _page(request, v, error=f"not in the policy: {what}", status=404)
    _policy_changed(request)
    log.info("trust rule removed in console", extra={"rule": what, "by": v.principal.token_id})
    return web.redirect("/settings#trust")


@router.post("/settings/trust/signatures")
async def put_signature_rule(request: Request, v: web.Viewer = Depends(web.viewer)):
    """Set the signature rule of a pattern, cluster and namespace (replacing the one there), as
    `vigil trust require` does; the trust policy gets a new revision."""
    form, _ = await web.checked_form(request)
    web.require_admin(v)

    def work() -> tuple[bool, str]:
        with request.app.state.engine.begin() as conn:
            rule = rule_from_form(form, _cluster_field(conn, form, new=True))
            return policy_store.put_signature_rule(conn, rule, f"console:{v.principal.name}"), rule.describe()

    try:
        added, what = await run_in_threadpool(work)
    except (RuleError, SignatureFormError) as exc:
        return _page(request, v, signature_error=str(exc), signature_form=form, status=400)
    _policy_changed(request)
    # The rule's place only: its keys and identities are in the policy, not in the log.
    log.info(
        "signature rule set in console",
        extra={"rule": what, "replaced": not added, "by": v.principal.token_id},
    )
    return web.redirect("/settings#signatures")


def _posted_signature_place(form) -> tuple[Pattern, str | None, str | None]:
    """The (pattern, cluster, namespace) a row's remove button names, as JSON in the button's value."""
    try:
        place = orjson.loads(str(form.get("rule") or ""))
    except orjson.JSONDecodeError:
        place = None
    if not isinstance(place, dict) or not all(
        isinstance(place.get(k, ""), str) for k in ("pattern", "cluster", "namespace")
    ):
        raise RuleError("rule: must be an object of pattern, cluster and namespace strings")
    return _pattern_field(place, "pattern"), place.get("cluster") or None, place.get("namespace") or None


@router.post("/settings/trust/signatures/remove")
async def remove_signature_rule(request: Request, v: web.Viewer = Depends(web.viewer)):
    form, _ = await web.checked_form(request)
    web.require_admin(v)
    try:
        pattern, cluster, namespace = _posted_signature_place(form)
    except RuleError as exc:
        return _page(request, v, signature_error=str(exc), status=400)

    def work() -> bool:
        with request.app.state.engine.begin() as conn:
            return policy_store.remove_signature_rule(conn, pattern, cluster, namespace, f"console:{v.principal.name}")

    where = ("global" if cluster is None else f"cluster {cluster}") + (f", namespace {namespace}" if namespace else "")
    what = f"signatures for {pattern} ({where})"
    if not await run_in_threadpool(work):
        return _page(request, v, signature_error=f"not in the policy: {what}", status=404)
    _policy_changed(request)
    log.info("signature rule removed in console", extra={"rule": what, "by": v.principal.token_id})
    return web.redirect("/settings#signatures")


def _policy_changed(request: Request) -> None:
    """Wake this process's admission feeds and waiting sensors at once after a policy change (the API's PUTs
    do the same); those of other replicas see the new revision on their next check of the store."""
    changes = getattr(request.app.state, "admission_changes", None)
    if changes is not None:
        changes.notify()
    runtime = getattr(request.app.state, "runtime_policy_changes", None)
    if runtime is not None:  # the sensors waiting for their node's runtime policy
        runtime.notify()


@router.post("/settings/enforcement")
async def replace_enforcement(request: Request, v: web.Viewer = Depends(web.viewer)):
    form, _ = await web.checked_form(request)
    web.require_admin(v)
    text = str(form.get("policy") or "")
    if len(text) > MAX_POLICY_TEXT:
        return _page(
            request,
            v,
            enforcement_error=f"policy: longer than {MAX_POLICY_TEXT} characters",
            enforcement_text=text[:MAX_POLICY_TEXT],
            status=400,
        )
    try:
        policy = load_enforcement_yaml(text, FORM_SOURCE)
    except EnforcementPolicyError as exc:
        return _page(request, v, enforcement_error=str(exc), enforcement_text=text, status=400)

    def work() -> tuple[bool, str]:
        """(stored, revision): the posted policy as a new revision, or nothing when it is the stored one."""
        with request.app.state.engine.begin() as conn:
            current = enforcement_store.load_enforcement(conn)
            if current.updated_at is not None and current.policy == policy:
                return False, current.revision
            return True, enforcement_store.replace_enforcement(conn, policy, f"console:{v.principal.name}").revision

    stored, revision = await run_in_threadpool(work)
    if not stored:
        return _page(request, v, enforcement_notice=f"unchanged: the policy is already revision {revision}")
    _policy_changed(request)
    log.info("enforcement policy replaced in console", extra={"revision": revision, "by": v.principal.token_id})
    return web.redirect("/settings#enforcement")


def _deny_sha256(form) -> str:
    value = str(form.get("sha256") or "").strip().lower().removeprefix("sha256:")
    if not SHA256.match(value):
        raise RuleError(f"sha256: {value[:80]!r} is not a file sha256 (64 hex digits)")
    return value


@router.post("/settings/deny-list")
async def add_deny(request: Request, v: web.Viewer = Depends(web.viewer)):
    form, _ = await web.checked_form(request)
    web.require_admin(v)
    reason = str(form.get("reason") or "").strip()
    try:
        digest = _deny_sha256(form)
        if not reason or len(reason) > prevention_store.MAX_REASON:
            raise RuleError(f"reason: must say why the file is denied, in 1-{prevention_store.MAX_REASON} characters")
    except RuleError as exc:
        return _page(request, v, deny_error=str(exc), deny_form=form, status=400)

    def work():
        with request.app.state.engine.begin() as conn:
            return prevention_store.add_denied(conn, digest, reason, f"console:{v.principal.name}")

    try:
        added = await run_in_threadpool(work)
    except prevention_store.DenyListFull as exc:
        return _page(request, v, deny_error=str(exc), deny_form=form, status=409)
    if added is None:
        return _page(request, v, deny_error=f"sha256 {digest} is already on the deny list", status=409)
    _policy_changed(request)
    log.info("deny list: sha256 added in console", extra={"sha256": digest, "by": v.principal.token_id})
    return web.redirect("/settings#deny-list")


@router.post("/settings/deny-list/remove")
async def remove_deny(request: Request, v: web.Viewer = Depends(web.viewer)):
    form, _ = await web.checked_form(request)
    web.require_admin(v)
    try:
        digest = _deny_sha256(form)
    except RuleError as exc:
        return _page(request, v, deny_error=str(exc), status=400)

    def work() -> bool:
        with request.app.state.engine.begin() as conn:
            return prevention_store.remove_denied(conn, digest, f"console:{v.principal.name}")

    if not await run_in_threadpool(work):
        return _page(request, v, deny_error=f"sha256 {digest} is not on the deny list", status=404)
    _policy_changed(request)
    log.info("deny list: sha256 removed in console", extra={"sha256": digest, "by": v.principal.token_id})
    return web.redirect("/settings#deny-list")


@router.post("/settings/enforcement/runtime")
async def replace_runtime_rules(request: Request, v: web.Viewer = Depends(web.viewer)):
    """One policy's runtime prevention rules from the form's selects, stored as a new revision of the policy."""
    form, _ = await web.checked_form(request)
    web.require_admin(v)
    name = str(form.get("policy") or "")
    modes = {}
    for rule in RuntimeRules.model_fields:
        value = str(form.get(rule) or "off")
        if value not in RUNTIME_MODES:
            error = f"{rule}: {value[:40]!r} is not one of {', '.join(RUNTIME_MODES)}"
            return _page(request, v, enforcement_error=f"runtime rules of policy {name!r}: {error}", status=400)
        modes[rule] = value
    runtime = RuntimeRules.model_validate(modes)

    def work() -> tuple[str, str]:
        """(outcome, revision): stored, unchanged or missing (no policy of that name)."""
        with request.app.state.engine.begin() as conn:
            current = enforcement_store.load_enforcement(conn)
            entries = list(current.policy.policies)
            at = next((i for i, p in enumerate(entries) if p.name == name), None)
            if at is None:
                return "missing", current.revision
            if entries[at].runtime == runtime:
                return "unchanged", current.revision
            entries[at] = entries[at].model_copy(update={"runtime": runtime})
            policy = current.policy.model_copy(update={"policies": tuple(entries)})
            return "stored", enforcement_store.replace_enforcement(conn, policy, f"console:{v.principal.name}").revision

    outcome, revision = await run_in_threadpool(work)
    if outcome == "missing":
        return _page(request, v, enforcement_error=f"policy: no policy is named {name[:80]!r}", status=404)
    if outcome == "unchanged":
        return _page(request, v, enforcement_notice=f"unchanged: the policy is already revision {revision}")
    _policy_changed(request)
    log.info(
        "runtime rules replaced in console", extra={"policy": name, "revision": revision, "by": v.principal.token_id}
    )
    return web.redirect("/settings#runtime-rules")


@router.post("/settings/alerts/{output_id}/remove")
async def remove_output(output_id: params.RowId, request: Request, v: web.Viewer = Depends(web.viewer)):
    await web.checked_form(request)
    web.require_admin(v)

    def work() -> bool:
        with request.app.state.engine.begin() as conn:
            return alert_store.delete_output(conn, output_id)

    if not await run_in_threadpool(work):
        return _page(request, v, error=f"alert output {output_id} does not exist", status=404)
    log.info("alert output removed in console", extra={"output_id": output_id, "by": v.principal.token_id})
    return web.redirect("/settings#alerts")
