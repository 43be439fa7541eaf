"""The enforcement policy as the YAML a person reads and edits (the console's form, `vigil policy enforcement show`).

Every top-level field and each policy's name, mode, failure and rules are written out, defaults too, so the
text says what is enforced; a scope is written only with what narrows it, and runtime prevention only with
its rules that are on. Reading the text back with
``load_enforcement_yaml`` gives the same policy (and so the same revision).
"""

from __future__ import annotations

from typing import Any

import yaml

from vigil.policy.enforcement import EnforcementPolicy, PolicyEntry


def _entry(entry: PolicyEntry) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": entry.name, "mode": str(entry.mode), "failure": str(entry.failure)}
    scope = entry.scope.model_dump(mode="json", exclude_defaults=True)
    if scope:
        doc["scope"] = scope
    doc["rules"] = entry.rules.model_dump(mode="json", exclude_none=True)
    runtime = {rule: str(mode) for rule, mode in entry.runtime.on().items()}
    if runtime:  # absent: every runtime prevention rule is off
        doc["runtime"] = runtime
    return doc


def enforcement_document(policy: EnforcementPolicy) -> dict[str, Any]:
    return {
        "exempt_namespaces": list(policy.exempt_namespaces),
        "break_glass_annotation": policy.break_glass_annotation,
        "policies": [_entry(p) for p in policy.policies],
    }


def enforcement_yaml(policy: EnforcementPolicy) -> str:
    return yaml.safe_dump(enforcement_document(policy), sort_keys=False, default_flow_style=False, allow_unicode=True)
