# -*- coding: utf-8 -*-
# Private to restorable.backup: what a drill's application checks read of a recovery point.
"""The data streams stored with a recovery point, as the application checks read them.

A database profile's backup is a set of named streams kept beside the point (``pg_dump``
archives and ``globals.sql``, a base backup's tar, a mariabackup xbstream). Each tier that keeps
such streams implements :class:`RestoredData` over its own storage and hands it to
:func:`~.application.database_layer`; the checks never learn where the data lives, and no stream
has to land on disk before its consumer reads it.
"""
from __future__ import annotations

import abc
from typing import Sequence


class CheckFailed(Exception):
    """A step of an application check failed; the message names the step and the reason."""


class RestoredData(abc.ABC):
    """The named streams of one recovery point."""

    @abc.abstractmethod
    def names(self) -> list[str]:
        """The stream names, sorted; DrillError when they cannot be listed."""

    @abc.abstractmethod
    def text(self, name: str) -> str:
        """A small stream (globals.sql) as text; CheckFailed when it cannot be read."""

    @abc.abstractmethod
    def pipe(self, name: str, consumer: Sequence[str], env: dict[str, str], what: str) -> None:
        """The stream into the stdin of the command consumer (run with env).

        CheckFailed when the stream cannot be read, or naming ``what`` when the consumer fails.
        """

    @abc.abstractmethod
    def origins(self) -> dict[str, str]:
        """{stream name: where it was read from, short} for the drill's evidence."""
