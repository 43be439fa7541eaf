"""Dynamic admission control as kube-apiserver does it: calling the webhooks of the stored
Mutating/ValidatingWebhookConfigurations on writes, with their matching, failure policies,
timeouts, patches, warnings and error wording.

Webhooks named by ``clientConfig.service`` are reached through ``service_endpoints``
(``"namespace/name"`` -> ``"https://127.0.0.1:PORT"``), since the test server has no cluster
network; TLS is still verified against ``caBundle`` for the service's DNS name
(``name.namespace.svc``), as kube-apiserver verifies it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ssl
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from .errors import ApiError
from .patch import json_patch
from .resources import BY_KIND, WEBHOOK_KINDS, ResourceType
from .selectors import Requirement, labels_match

MAX_RESPONSE_BYTES = 10 * 1024 * 1024
# What kube-apiserver returns to clients of all warnings of one request together.
MAX_WARNING_RUNES = 4 * 1024
DEFAULT_USER: dict[str, Any] = {
    "username": "kubernetes-admin",
    "groups": ["system:masters", "system:authenticated"],
}
_VALIDATING = BY_KIND[("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration")]
_MUTATING = BY_KIND[("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")]
_NAMESPACES = BY_KIND[("v1", "Namespace")]


@dataclass
class Attributes:
    """One write, as admission sees it."""

    rt: ResourceType
    subresource: str  # "" for the main resource
    operation: str  # CREATE, UPDATE, DELETE
    namespace: str
    name: str
    obj: dict | None
    old: dict | None
    dry_run: bool
    options: dict
    user: dict = field(default_factory=lambda: dict(DEFAULT_USER))
    kind: dict | None = None  # the object's group/version/kind when not the resource's (a Scale)


class Warnings:
    """The request's ``Warning`` headers: deduplicated, and cut off past kube-apiserver's limit."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._runes = 0

    def add(self, text: str) -> None:
        if not text or text in self.items or self._runes >= MAX_WARNING_RUNES:
            return
        self.items.append(text)
        self._runes += len(text)

    def headers(self) -> list[str]:
        out = []
        for text in self.items:
            quoted = text.replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'299 - "{quoted}"')
        return out


def selector_requirements(selector: Any) -> list[Requirement] | None:
    """A metav1.LabelSelector as requirements; None when it selects nothing (a bad selector)."""
    if not isinstance(selector, dict):
        return []
    reqs = [Requirement(str(k), "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        op = ops.get(str(expr.get("operator")))
        if op is None:
            return None
        reqs.append(Requirement(str(expr.get("key")), op, tuple(str(v) for v in expr.get("values") or ())))
    return reqs


def _rule_matches(rule: dict, attrs: Attributes) -> bool:
    ops = rule.get("operations") or []
    if "*" not in ops and attrs.operation not in ops:
        return False
    groups, versions = rule.get("apiGroups") or [], rule.get("apiVersions") or []
    if "*" not in groups and attrs.rt.group not in groups:
        return False
    if "*" not in versions and attrs.rt.version not in versions:
        return False
    scope = rule.get("scope") or "*"
    if (scope == "Cluster" and attrs.rt.namespaced) or (scope == "Namespaced" and not attrs.rt.namespaced):
        return False
    for resource in rule.get("resources") or []:
        # "pods" is the main resource only, "pods/*" it and every subresource, "*/scale" every scale.
        res, _, sub = str(resource).partition("/")
        if res in ("*", attrs.rt.plural) and sub in ("*", attrs.subresource):
            return True
    return False


def _labels(obj: dict | None) -> dict:
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


def _namespace_labels(store: Any, attrs: Attributes) -> dict | None:
    if attrs.rt is _NAMESPACES and not attrs.subresource and attrs.operation in ("CREATE", "UPDATE"):
        return _labels(attrs.obj)
    try:
        return _labels(store.get(_NAMESPACES, None, attrs.namespace))
    except ApiError:
        return None


def _hook_matches(store: Any, hook: dict, attrs: Attributes) -> bool:
    if not any(_rule_matches(rule, attrs) for rule in hook.get("rules") or []):
        return False
    ns_reqs = selector_requirements(hook.get("namespaceSelector"))
    if ns_reqs is None:
        return False
    if ns_reqs and (attrs.namespace or attrs.rt is _NAMESPACES):
        labels = _namespace_labels(store, attrs)
        if labels is None or not labels_match(ns_reqs, labels):
            return False
    obj_reqs = selector_requirements(hook.get("objectSelector"))
    if obj_reqs is None:
        return False
    if obj_reqs and not (
        (attrs.obj is not None and labels_match(obj_reqs, _labels(attrs.obj)))
        or (attrs.old is not None and labels_match(obj_reqs, _labels(attrs.old)))
    ):
        return False
    return True


def _matching(store: Any, rt: ResourceType, attrs: Attributes) -> list[dict]:
    configs = sorted(store.objects(rt), key=lambda c: c["metadata"]["name"])
    return [hook for config in configs for hook in config.get("webhooks") or [] if _hook_matches(store, hook, attrs)]


class CallFailure(Exception):
    """A webhook that could not be called or answered nonsense: subject to its failurePolicy."""

    def __init__(self, hook: str, reason: str) -> None:
        super().__init__(f'failed calling webhook "{hook}": {reason}')


def _internal(message: str) -> ApiError:
    return ApiError(500, f"Internal error occurred: {message}", details={"causes": [{"message": message}]})


def _denied(hook: str, result: Any) -> ApiError:
    """``webhookerrors.ToStatusErr``: the webhook's own Status, with the webhook named in its message."""
    status = dict(result) if isinstance(result, dict) else {}
    code = status.get("code")
    status["code"] = code if isinstance(code, int) and code >= 400 else 400
    if status.get("status") in (None, "", "Success"):
        status["status"] = "Failure"
    denied_by = f'admission webhook "{hook}" denied the request'
    if status.get("message"):
        status["message"] = f"{denied_by}: {status['message']}"
    elif status.get("reason"):
        status["message"] = f"{denied_by}: {status['reason']}"
    else:
        status["message"] = f"{denied_by} without explanation"
    body = {"kind": "Status", "apiVersion": "v1", "metadata": status.get("metadata") or {}}
    body.update({k: status[k] for k in ("status", "message", "reason", "details", "code") if status.get(k)})
    err = ApiError(status["code"], status["message"], str(status.get("reason") or ""))
    err.body = body
    return err


@dataclass
class _Target:
    url: str  # as kube-apiserver names it in errors: the service's DNS name for a service
    connect: str  # where this test server really connects
    server_hostname: str | None


def _target(hook: dict, service_endpoints: Mapping[str, str]) -> _Target:
    config = hook.get("clientConfig") or {}
    timeout = f"?timeout={hook.get('timeoutSeconds') or 10}s"
    if config.get("url"):
        return _Target(config["url"] + timeout, config["url"] + timeout, None)
    svc = config.get("service") or {}
    ns, name, port, path = svc.get("namespace"), svc.get("name"), svc.get("port") or 443, svc.get("path") or ""
    dns = f"{name}.{ns}.svc"
    shown = f"https://{dns}:{port}{path}{timeout}"
    base = service_endpoints.get(f"{ns}/{name}")
    if base is None:
        raise CallFailure(
            hook["name"],
            f'failed to call webhook: Post "{shown}": service "{ns}/{name}" has no endpoint in this test API server '
            f"(map it with --service-endpoint {ns}/{name}=https://HOST:PORT)",
        )
    return _Target(shown, base.rstrip("/") + path + timeout, dns)


def _ssl_context(hook: dict) -> ssl.SSLContext:
    bundle = (hook.get("clientConfig") or {}).get("caBundle")
    if not bundle:
        return ssl.create_default_context()
    try:
        pem = base64.b64decode(bundle).decode()
        return ssl.create_default_context(cadata=pem)
    except (binascii.Error, ValueError, ssl.SSLError) as exc:
        raise CallFailure(hook["name"], f"could not get REST client: unable to load root certificates: {exc}") from None


def _transport_error(exc: BaseException, hostname: str) -> str:
    """Go's wording for what failed, so messages read as kube-apiserver's."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_error = exc.certificate_error
        if (
            isinstance(cert_error, ssl.SSLCertVerificationError)
            and "hostname" in str(cert_error.verify_message).lower()
        ):
            return f"tls: failed to verify certificate: x509: certificate is not valid for {hostname}"
        return "tls: failed to verify certificate: x509: certificate signed by unknown authority"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"dial tcp {exc.host}:{exc.port}: connect: connection refused"
    return str(exc) or type(exc).__name__


def _http_error(status: int, body: bytes) -> str:
    try:
        doc = orjson.loads(body)
        if isinstance(doc, dict) and doc.get("kind") == "Status" and doc.get("message"):
            return str(doc["message"])
    except orjson.JSONDecodeError:
        pass
    if status == 404:
        return "the server could not find the requested resource"
    text = body[:1024].decode("utf-8", "replace").strip()
    return f'an error on the server ("{text}") has prevented the request from succeeding'


async def _call(hook: dict, review: dict, service_endpoints: Mapping[str, str]) -> dict:
    """POST the AdmissionReview; the verified ``response`` (or CallFailure)."""
    name = hook["name"]
    if "v1" not in (hook.get("admissionReviewVersions") or []):
        raise CallFailure(
            name,
            "webhook does not accept known AdmissionReview versions: "
            f"{hook.get('admissionReviewVersions')!r}; this API server speaks v1",
        )
    target = _target(hook, service_endpoints)
    ctx = _ssl_context(hook)
    timeout = float(hook.get("timeoutSeconds") or 10)
    headers = {"Content-Type": "application/json", "Accept": "application/json, */*"}
    if target.server_hostname:
        headers["Host"] = urlsplit(target.url).netloc
    try:
        async with asyncio.timeout(timeout):
            async with aiohttp.ClientSession() as session:
                async with session.post(
                    target.connect,
                    data=orjson.dumps(review),
                    headers=headers,
                    ssl=ctx,
                    server_hostname=target.server_hostname,
                    allow_redirects=False,
                ) as resp:
                    body = await resp.content.read(MAX_RESPONSE_BYTES + 1)
                    status = resp.status
    except TimeoutError:
        raise CallFailure(name, f'failed to call webhook: Post "{target.url}": context deadline exceeded') from None
    except aiohttp.ClientError as exc:
        why = _transport_error(exc, target.server_hostname or str(urlsplit(target.url).hostname))
        raise CallFailure(name, f'failed to call webhook: Post "{target.url}": {why}') from None
    if len(body) > MAX_RESPONSE_BYTES:
        raise CallFailure(name, f"failed to call webhook: the response is larger than {MAX_RESPONSE_BYTES} bytes")
    if not 200 <= status < 300:
        raise CallFailure(name, f"failed to call webhook: {_http_error(status, body)}")
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise CallFailure(name, f"failed to call webhook: the response is not JSON: {exc}") from None
    return _verify(name, answer, review["request"]["uid"], bool(hook.get("_mutating")))


def _verify(name: str, answer: Any, uid: str, mutating: bool) -> dict:
    """``VerifyAdmissionResponse``, in its words."""

    def invalid(why: str) -> CallFailure:
        return CallFailure(name, f"received invalid webhook response: {why}")

    if not isinstance(answer, dict):
        raise invalid("the response is not a JSON object")
    response = answer.get("response")
    if not isinstance(response, dict):
        raise invalid("webhook response was absent")
    if response.get("uid") != uid:
        raise invalid(f'expected response.uid="{uid}", got "{response.get("uid") or ""}"')
    if (answer.get("apiVersion"), answer.get("kind")) != ("admission.k8s.io/v1", "AdmissionReview"):
        got = answer.get("apiVersion") or ""
        raise invalid(
            f"expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {got}, "
            f"Kind={answer.get('kind') or ''}"
        )
    patch_type, patch = response.get("patchType") or "", response.get("patch") or ""
    if patch and not patch_type:
        raise invalid("webhook returned response.patch but not response.patchType")
    if patch_type and not patch:
        raise invalid("webhook returned response.patchType but not response.patch")
    if patch_type and not mutating:
        raise invalid("validating webhook may not return response.patch or response.patchType")
    if patch_type and patch_type != "JSONPatch":
        raise invalid(f'invalid webhook response.patchType "{patch_type}", only "JSONPatch" is supported')
    return response


def _review(attrs: Attributes, obj: dict | None) -> dict:
    rt = attrs.rt
    kind = attrs.kind or {"group": rt.group, "version": rt.version, "kind": rt.kind}
    resource = {"group": rt.group, "version": rt.version, "resource": rt.plural}
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
    }
    if attrs.subresource:
        request["subResource"] = request["requestSubResource"] = attrs.subresource
    if attrs.name:
        request["name"] = attrs.name
    if attrs.namespace:
        request["namespace"] = attrs.namespace
    request.update(
        operation=attrs.operation,
        userInfo=attrs.user,
        object=obj,
        oldObject=attrs.old,
        dryRun=attrs.dry_run,
        options=attrs.options,
    )
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


async def _invoke(
    hook: dict, attrs: Attributes, obj: dict | None, endpoints: Mapping[str, str], warnings: Warnings
) -> dict | None:
    """One webhook: its response (None when it failed open); raises the request's refusal."""
    name = hook["name"]
    if attrs.dry_run and hook.get("sideEffects") not in ("None", "NoneOnDryRun"):
        raise ApiError(400, f'admission webhook "{name}" does not support dry run')
    try:
        response = await _call(hook, _review(attrs, obj), endpoints)
    except CallFailure as exc:
        if hook.get("failurePolicy") == "Ignore":
            return None
        raise _internal(str(exc)) from None
    for text in response.get("warnings") or []:
        warnings.add(str(text))
    if response.get("allowed") is not True:
        raise _denied(name, response.get("status"))
    return response


def _apply_patch(name: str, obj: dict | None, patch: str) -> dict:
    try:
        ops = orjson.loads(base64.b64decode(patch))
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise _internal(f"admission webhook {name!r} returned a patch that is not base64 JSON: {exc}") from None
    if not isinstance(ops, list):
        raise _internal("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    if not ops:
        return obj or {}
    if obj is None:
        raise _internal(
            f'admission webhook "{name}" attempted to modify the object, which is not supported for this operation'
        )
    try:
        patched = json_patch(obj, ops)
    except ApiError as exc:
        raise _internal(exc.message) from None
    if not isinstance(patched, dict):
        raise _internal(f'admission webhook "{name}" patched the object into a non-object')
    return patched


async def mutate(store: Any, attrs: Attributes, endpoints: Mapping[str, str], warnings: Warnings) -> dict | None:
    """Run the matching mutating webhooks in order (configuration name, then webhook); the object
    they leave. Webhooks with ``reinvocationPolicy: IfNeeded`` run once more when a later one
    changed the object after them."""
    if attrs.rt.kind in WEBHOOK_KINDS:  # never for webhook configurations: no deadlock on a broken webhook
        return attrs.obj
    hooks = [dict(h, _mutating=True) for h in _matching(store, _MUTATING, attrs)]
    obj = attrs.obj
    called: list[tuple[int, dict]] = []  # (how many changes had happened before the call, hook)
    changes = 0
    for rnd in (0, 1):
        todo = (
            hooks
            if rnd == 0
            else [h for seen, h in called if h.get("reinvocationPolicy") == "IfNeeded" and seen < changes]
        )
        if rnd == 1 and not todo:
            break
        for hook in todo:
            if rnd == 0:
                called.append((changes, hook))
            response = await _invoke(hook, attrs, obj, endpoints, warnings)
            if response is not None and response.get("patch"):
                patched = _apply_patch(hook["name"], obj, str(response["patch"]))
                if patched != obj:
                    obj, changes = patched, changes + 1
    return obj


async def validate(store: Any, attrs: Attributes, endpoints: Mapping[str, str], warnings: Warnings) -> None:
    """Run the matching validating webhooks concurrently, as kube-apiserver does; the first refusal
    (in configuration order) is the request's."""
    if attrs.rt.kind in WEBHOOK_KINDS:
        return
    hooks = _matching(store, _VALIDATING, attrs)
    if not hooks:
        return
    results = await asyncio.gather(
        *(_invoke(h, attrs, attrs.obj, endpoints, warnings) for h in hooks), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
