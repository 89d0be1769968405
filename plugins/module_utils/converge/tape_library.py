# -*- coding: utf-8 -*-
# Private to restorable.backup: the host side of a tape library's setup. apply writes the library's
# configuration (what every export, restore and drill opens), an S3 library's credentials (root
# only), and lets the library lay out its slots, drives, vault and catalog. Removing a library
# removes its configuration and credentials only: cartridges are backups, never deleted by apply.
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from ..storage.tape.config import LibraryConfig, parse_config
from ..storage.tape.library import TapeLibrary, make_store, utc_now
from ..storage.tape.media import TapeError
from .files import DesiredFile, FileConverger


class TapeLibraryFailed(Exception):
    """A library could not be set up; the message names it."""


@dataclass
class LibraryResult:
    name: str
    config_path: str
    changed: bool = False
    actions: list[str] = field(default_factory=list)


def config_text(config: dict[str, Any]) -> str:
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


class TapeLibraries:
    """Converges the libraries the plan lists (plugin_utils/tiers/array.py)."""

    def __init__(self, check_mode: bool) -> None:
        self.check_mode = check_mode
        self.files = FileConverger(check_mode)

    def converge(self, libraries: list[dict[str, Any]], state: str = "present") -> list[LibraryResult]:
        if state == "absent":
            return [self._remove(library) for library in libraries]
        missing = [library["name"] for library in libraries if not library.get("config")]
        if missing:
            raise TapeLibraryFailed("library %s: state present needs its config" % ", ".join(missing))
        # Every configuration is checked before anything is written.
        parsed = {library["config_path"]: self._parse(library) for library in libraries}
        return [self._present(library, parsed[library["config_path"]]) for library in libraries]

    @staticmethod
    def _parse(library: dict[str, Any]) -> LibraryConfig:
        try:
            config = parse_config(library["config"], library["config_path"])
        except TapeError as exc:
            raise TapeLibraryFailed("library %s: %s" % (library["name"], exc)) from None
        if config.name != library["name"]:
            raise TapeLibraryFailed("library %s: its configuration names library %s" % (library["name"], config.name))
        return config

    def _present(self, library: dict[str, Any], config: LibraryConfig) -> LibraryResult:
        result = LibraryResult(library["name"], library["config_path"])
        if any(f.get("content") is None for f in library.get("files") or []):
            raise TapeLibraryFailed("library %s: a credentials file without content" % library["name"])
        # Credentials first: an S3 library reads them to reach its bucket.
        wanted = [DesiredFile(f["path"], f["content"].rstrip("\n") + "\n", 0o600, secret=True) for f in library.get("files") or []]
        wanted.append(DesiredFile(library["config_path"], config_text(library["config"]), 0o644))
        for item in wanted:
            if self.files.ensure(item):
                result.actions.append("placed %s" % item.path)
        result.actions += self._layout(library["name"], config, [item.path for item in wanted])
        result.changed = bool(result.actions)
        return result

    def _layout(self, name: str, config: LibraryConfig, files: list[str]) -> list[str]:
        """The library's own setup (directories, state, catalog), from the configuration as planned."""
        if self.check_mode and any(not os.path.exists(path) for path in files[:-1]):
            # Without its credentials on the host an S3 library cannot be asked about its bucket.
            return ["would set up the %s library %s once its credentials are placed" % (config.driver, name)]
        try:
            library = TapeLibrary(config, make_store(config, utc_now), utc_now)
            return library.ensure(self.check_mode)
        except (TapeError, OSError) as exc:
            raise TapeLibraryFailed("library %s: %s" % (name, exc)) from None

    def _remove(self, library: dict[str, Any]) -> LibraryResult:
        result = LibraryResult(library["name"], library["config_path"])
        for path, secret in [(library["config_path"], False)] + [(f["path"], True) for f in library.get("files") or []]:
            if self.files.remove(path, secret=secret):
                result.actions.append("removed %s" % path)
        result.changed = bool(result.actions)
        return result
