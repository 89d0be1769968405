# -*- coding: utf-8 -*-
# Private to restorable.backup: turns Ansible host variables into the plain data the policy
# validator reads, remembering where each value was written and how each secret was given.
from __future__ import annotations

import datetime
import os

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.parsing.vault import EncryptedString

try:  # ansible-core 2.19+ tags loaded values with their file and line
    from ansible._internal._datatag._tags import Origin
except ImportError:  # older cores: messages name the host and field path only
    Origin = None

from .policy.problems import Problem
from .policy.validator import VARIABLE_PREFIX


def plain(value: object) -> object:
    """Tagged Ansible values as builtin types (the validator keys its cache on them); anything
    else stays as it is so the schema names its type (a YAML date, say)."""
    if value is None or isinstance(value, (datetime.date, datetime.datetime)):
        return value
    for kind in (bool, int, float, str):  # bool first: it is an int too
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, dict):
        return {plain_key(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def plain_key(key: object) -> object:
    return str(key) if isinstance(key, str) else key


class InventoryPolicy:
    """The restorable_* variables of each host, templated, with their origins."""

    def __init__(self, hostvars, templar_errors: tuple = (AnsibleError,)) -> None:
        self._hostvars = hostvars
        self._errors = templar_errors
        self.raw: dict = {}
        self.documents: dict = {}
        self.problems: list = []

    def load(self, hosts: list) -> "InventoryPolicy":
        for host in hosts:
            raw = self._hostvars.raw_get(host)
            names = sorted(k for k in raw if isinstance(k, str) and k.startswith(VARIABLE_PREFIX))
            self.raw[host] = {name: raw[name] for name in names}
            self.documents[host] = {}
            for name in names:
                try:
                    self.documents[host][name] = plain(self._hostvars[host][name])
                except self._errors as exc:
                    message = "cannot be templated: %s" % to_text(exc.message if hasattr(exc, "message") else exc)
                    self.problems.append(Problem(host, (name,), message.splitlines()[0], origin=self.origin(host, (name,))))
        return self

    def _raw_at(self, host: str, path: tuple) -> list:
        """The raw values from the variable down the path, as far as the path exists."""
        node = self.raw.get(host, {})
        found = []
        for part in path:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, (list, tuple)) and isinstance(part, int) and 0 <= part < len(node):
                node = node[part]
            else:
                break
            found.append(node)
        return found

    def origin(self, host: str, path: tuple):
        if Origin is None:
            return None
        for node in reversed(self._raw_at(host, path)):
            tag = Origin.get_tag(node)
            if tag is not None and tag.path:
                line = ":%d" % tag.line_num if tag.line_num else ""
                return "%s%s" % (_readable_path(tag.path), line)
        return None

    def secret_source(self, host: str, path: tuple, value: object) -> str:
        nodes = self._raw_at(host, path)
        raw = nodes[-1] if len(nodes) == len(path) else value
        if isinstance(raw, EncryptedString):
            return "vault"
        if isinstance(raw, str) and "{{" in raw:
            return "lookup"
        return "plain"


def _readable_path(path: str) -> str:
    """Relative to the working directory when below it, as operators type inventory paths."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative
