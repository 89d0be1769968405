# -*- coding: utf-8 -*-
# Private to restorable.backup: validation of a whole inventory, host by host, on the controller.
# Input is plain data (restorable_* variables per host) plus two callbacks that know where values
# came from, so the same code serves the action plugin, the tests and the benchmark.
from __future__ import annotations

import marshal
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..heap import cycle_collection_paused
from ..tiers import Tiers
from .compliance import ComplianceScorer
from .problems import ERROR, WARNING, Problem
from .schema import SchemaValidator, load_schema
from .semantic import PolicyChecks

VARIABLE_PREFIX = "restorable_"
# Answers where a value was written ("group_vars/all.yml:12") or None.
OriginLookup = Callable[[str, tuple], Optional[str]]
# Answers how a secret was given: "vault", "lookup" or "plain".
SecretSource = Callable[[str, tuple, object], str]


def plain_secret_source(host: str, path: tuple, value: object) -> str:
    return "lookup" if isinstance(value, str) and "{{" in value else "plain"


@dataclass
class FleetReport:
    problems: list = field(default_factory=list)
    compliance: dict = field(default_factory=dict)
    hosts_checked: int = 0

    @property
    def errors(self) -> list:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list:
        return [p for p in self.problems if p.severity == WARNING]

    def lines(self) -> list:
        return [p.line() for p in self.errors + self.warnings]


class FleetValidator:
    """Schema, then semantic checks, then compliance and secret hygiene, for every host.

    With tiers (the playbooks), also what this version plans: a dataset or drill of a tier
    without a planner is reported and left out of 3-2-1-1-0; without, the policy as written.
    """

    def __init__(self, origin: OriginLookup | None = None, secret_source: SecretSource = plain_secret_source,
                 tiers: Tiers | None = None) -> None:
        self.schema = SchemaValidator()
        self.secret_patterns = _secret_patterns(load_schema())
        self._secret_cache: dict = {}
        self.origin = origin
        self.secret_source = secret_source
        self.tiers = tiers

    def validate(self, hosts: dict, inventory_hosts: frozenset | None = None) -> FleetReport:
        """hosts: name -> variables; inventory_hosts: every name host references may use."""
        report = FleetReport()
        inventory_hosts = frozenset(hosts) if inventory_hosts is None else inventory_hosts
        with cycle_collection_paused():
            for host, variables in hosts.items():
                document = {k: v for k, v in variables.items() if k.startswith(VARIABLE_PREFIX)}
                report.problems.extend(self._with_origin(self.validate_host(host, document, inventory_hosts, report)))
                report.hosts_checked += 1
        return report

    def validate_host(self, host: str, document: dict, inventory_hosts: frozenset, report: FleetReport) -> list:
        problems = self.schema.problems(host, document)
        if problems:
            return problems  # later checks assume the shape the schema guarantees
        problems = PolicyChecks(host, document, inventory_hosts).run()
        if self.tiers is not None:
            problems.extend(self.tiers.unsupported(host, document))
        scorer = ComplianceScorer(host, document, self.tiers)
        scores = scorer.scores()
        if scores:
            report.compliance[host] = {s.dataset: s.as_dict() for s in scores}
        problems.extend(scorer.problems(scores))
        problems.extend(self._plaintext_secrets(host, document))
        return problems

    def _plaintext_secrets(self, host: str, document: dict) -> list:
        mode = document.get("restorable_compliance", {}).get("plaintext_secrets", "warn")
        severity = ERROR if mode == "error" else WARNING
        return [
            Problem(host, path, "secret given as plain text: use Ansible Vault or a lookup", severity)
            for name, value in document.items()
            for path, secret in self._secrets_in(name, value)
            if self.secret_source(host, path, secret) == "plain"
        ]

    def _secrets_in(self, name: str, value: object) -> list:
        """(path, value) of every secret in one variable; hosts sharing a group_vars value share
        the walk."""
        patterns = self.secret_patterns.get(name)
        if not patterns:
            return []
        try:
            key = (name, marshal.dumps(value))
        except ValueError:
            key = None
        found = self._secret_cache.get(key) if key else None
        if found is None:
            found = [hit for pattern in patterns for hit in _walk_pattern(value, pattern, (name,))]
            if key:
                self._secret_cache[key] = found
        return found

    def _with_origin(self, problems: list) -> list:
        if self.origin is None:
            return problems
        return [
            Problem(p.host, p.path, p.message, p.severity, self.origin(p.host, p.path)) for p in problems
        ]


def _secret_patterns(schema: dict) -> dict:
    """Per variable, the paths below it (with '*' for any key) whose schema is marked x-secret,
    found by walking the schema."""
    patterns: set = set()
    definitions = schema["$defs"]

    def walk(node: dict, path: tuple, seen: frozenset) -> None:
        ref = node.get("$ref", "")
        if ref.startswith("#/$defs/"):
            name = ref.split("/")[2]
            if name in seen:
                return
            node, seen = _resolve(definitions, ref), seen | {name}
        if node.get("x-secret"):
            patterns.add(path)
            return
        for key, child in node.get("properties", {}).items():
            walk(child, path + (key,), seen)
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], path + ("*",), seen)
        for branch in node.get("allOf", []):
            walk(branch.get("then", {}), path, seen)

    walk(schema, (), frozenset())
    by_variable: dict = {}
    for pattern in sorted(patterns):
        by_variable.setdefault(pattern[0], []).append(pattern[1:])
    return by_variable


def _resolve(definitions: dict, ref: str) -> dict:
    node = {"$defs": definitions}
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _walk_pattern(node: object, pattern: tuple, path: tuple):
    if not pattern:
        yield path, node
        return
    if not isinstance(node, dict):
        return
    head, rest = pattern[0], pattern[1:]
    keys = node.keys() if head == "*" else [head] if head in node else []
    for key in keys:
        yield from _walk_pattern(node[key], rest, path + (key,))
