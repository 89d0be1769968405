# -*- coding: utf-8 -*-
# Private to restorable.backup: what validation reports, one line per problem.
from __future__ import annotations

from dataclasses import dataclass

ERROR = "error"
WARNING = "warning"


def format_path(path: tuple) -> str:
    """restorable_datasets.www.paths[0]: the way operators write the YAML. Keys YAML did not read
    as strings print as YAML writes them (on: is the key true, ~: the key null)."""
    text = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += "[%d]" % part
        else:
            text += ("." if text else "") + _key_text(part)
    return text


def _key_text(key: object) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(key)


@dataclass(frozen=True)
class Problem:
    host: str
    path: tuple
    message: str
    severity: str = ERROR
    origin: str | None = None

    def line(self) -> str:
        where = " (%s)" % self.origin if self.origin else ""
        prefix = "" if self.severity == ERROR else "warning: "
        return _one_line("%s%s: %s: %s%s" % (prefix, self.host, format_path(self.path), self.message, where))


def _one_line(text: str) -> str:
    """A problem is one line: a newline or other control character a key or path brought in is escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
