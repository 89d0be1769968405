# -*- coding: utf-8 -*-
# Private to restorable.backup: what validation reports, one line per problem.
from __future__ import annotations

from dataclasses import dataclass

ERROR = "error"
WARNING = "warning"


def format_path(path: tuple) -> str:
    """restorable_datasets.www.paths[0]: the way operators write the YAML."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += "[%d]" % part
        else:
            text += ("." if text else "") + str(part)
    return text


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
        return "%s%s: %s: %s%s" % (prefix, self.host, format_path(self.path), self.message, where)
