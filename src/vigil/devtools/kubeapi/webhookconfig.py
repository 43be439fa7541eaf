"""What the API server does to a Validating/MutatingWebhookConfiguration on every write (pure):
default the optional fields as admissionregistration.k8s.io/v1 does, and refuse what its validation
refuses, in its words (``webhooks[0].sideEffects: Required value: ...``).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import urlsplit

from .errors import ApiError

_OPERATIONS = ("*", "CONNECT", "CREATE", "DELETE", "UPDATE")
_QUALIFIED = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?){2,}\Z")


def _supported(path: str, value: Any, allowed: tuple[str, ...]) -> str:
    return f'{path}: Unsupported value: "{value}": supported values: ' + ", ".join(f'"{a}"' for a in allowed)


def _check_rules(path: str, rules: Any, errs: list[str]) -> None:
    if not isinstance(rules, list):
        errs.append(f"{path}: Invalid value: must be a list")
        return
    for i, rule in enumerate(rules):
        at = f"{path}[{i}]"
        if not isinstance(rule, dict):
            errs.append(f"{at}: Invalid value: must be an object")
            continue
        for key in ("operations", "apiGroups", "apiVersions", "resources"):
            if not rule.get(key):
                errs.append(f"{at}.{key}: Required value")
        for j, op in enumerate(rule.get("operations") or []):
            if op not in _OPERATIONS:
                errs.append(_supported(f"{at}.operations[{j}]", op, _OPERATIONS))
        rule.setdefault("scope", "*")
        if rule["scope"] not in ("*", "Cluster", "Namespaced"):
            errs.append(_supported(f"{at}.scope", rule["scope"], ("*", "Cluster", "Namespaced")))


def _check_client_config(path: str, config: Any, errs: list[str]) -> None:
    if not isinstance(config, dict) or ("url" in config) == ("service" in config):
        errs.append(f"{path}: Required value: exactly one of url or service is required")
        return
    bundle = config.get("caBundle")
    if bundle is not None:
        try:
            base64.b64decode(str(bundle), validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, f"{path}.caBundle: illegal base64 data") from None
    if "url" in config:
        url = str(config["url"])
        parts = urlsplit(url)
        if parts.scheme != "https":
            errs.append(f"{path}.url: Invalid value: \"{url}\": 'https' is the only allowed URL scheme")
        if not parts.hostname:
            errs.append(f'{path}.url: Invalid value: "{url}": host must be specified')
        if parts.fragment:
            errs.append(f'{path}.url: Invalid value: "{url}": fragments are not permitted in the URL')
        if parts.query:
            errs.append(f'{path}.url: Invalid value: "{url}": query parameters are not permitted in the URL')
        return
    service = config["service"]
    if not isinstance(service, dict):
        errs.append(f"{path}.service: Invalid value: must be an object")
        return
    if not service.get("name"):
        errs.append(f"{path}.service.name: Required value: service name is required")
    if not service.get("namespace"):
        errs.append(f"{path}.service.namespace: Required value: service namespace is required")
    service.setdefault("port", 443)
    port = service["port"]
    if not isinstance(port, int) or not 1 <= port <= 65535:
        errs.append(
            f"{path}.service.port: Invalid value: {port}: port is not valid: must be between 1 and 65535, inclusive"
        )
    svc_path = service.get("path")
    if svc_path is not None and not str(svc_path).startswith("/"):
        errs.append(f"{path}.service.path: Invalid value: \"{svc_path}\": must start with a '/'")


def normalize_webhook_configuration(obj: dict[str, Any]) -> None:
    """Default ``obj`` in place; an invalid one is the API server's 422 (or 400 for bad base64)."""
    kind = str(obj.get("kind"))
    mutating = kind == "MutatingWebhookConfiguration"
    name = str((obj.get("metadata") or {}).get("name") or "")
    webhooks = obj.get("webhooks")
    if webhooks is None:
        webhooks = []
    errs: list[str] = []
    if not isinstance(webhooks, list):
        errs.append("webhooks: Invalid value: must be a list")
        webhooks = []
    seen: set[str] = set()
    for i, hook in enumerate(webhooks):
        at = f"webhooks[{i}]"
        if not isinstance(hook, dict):
            errs.append(f"{at}: Invalid value: must be an object")
            continue
        hook_name = hook.get("name")
        if not hook_name:
            errs.append(f"{at}.name: Required value")
        elif not _QUALIFIED.match(str(hook_name)):
            errs.append(
                f'{at}.name: Invalid value: "{hook_name}": '
                "should be a domain with at least three segments separated by dots"
            )
        elif hook_name in seen:
            errs.append(f'{at}.name: Duplicate value: "{hook_name}"')
        seen.add(str(hook_name))
        versions = hook.get("admissionReviewVersions")
        if not versions:
            errs.append(f"{at}.admissionReviewVersions: Required value: must specify one of v1, v1beta1")
        elif not {"v1", "v1beta1"} & set(versions):
            shown = ", ".join(f'"{v}"' for v in versions)
            errs.append(
                f"{at}.admissionReviewVersions: Invalid value: []string{{{shown}}}: "
                "must include at least one of v1, v1beta1"
            )
        effects = hook.get("sideEffects")
        if effects is None:
            errs.append(f"{at}.sideEffects: Required value: must specify one of None, NoneOnDryRun")
        elif effects not in ("None", "NoneOnDryRun"):
            errs.append(_supported(f"{at}.sideEffects", effects, ("None", "NoneOnDryRun")))
        hook.setdefault("failurePolicy", "Fail")
        if hook["failurePolicy"] not in ("Fail", "Ignore"):
            errs.append(_supported(f"{at}.failurePolicy", hook["failurePolicy"], ("Fail", "Ignore")))
        hook.setdefault("matchPolicy", "Equivalent")
        if hook["matchPolicy"] not in ("Equivalent", "Exact"):
            errs.append(_supported(f"{at}.matchPolicy", hook["matchPolicy"], ("Equivalent", "Exact")))
        hook.setdefault("namespaceSelector", {})
        hook.setdefault("objectSelector", {})
        hook.setdefault("timeoutSeconds", 10)
        timeout = hook["timeoutSeconds"]
        if not isinstance(timeout, int) or not 1 <= timeout <= 30:
            errs.append(
                f"{at}.timeoutSeconds: Invalid value: {timeout}: the timeout value must be between 1 and 30 seconds"
            )
        if mutating:
            hook.setdefault("reinvocationPolicy", "Never")
            if hook["reinvocationPolicy"] not in ("IfNeeded", "Never"):
                errs.append(_supported(f"{at}.reinvocationPolicy", hook["reinvocationPolicy"], ("IfNeeded", "Never")))
        _check_rules(f"{at}.rules", hook.get("rules") or [], errs)
        _check_client_config(f"{at}.clientConfig", hook.get("clientConfig"), errs)
    if errs:
        detail = errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"
        raise ApiError(422, f'{kind}.admissionregistration.k8s.io "{name}" is invalid: {detail}')
