# -*- coding: utf-8 -*-
"""The replica's forced command refuses every command but list, receive NAME and delete NAME...,
before it touches anything (the system tests run the allowed ones against real btrfs)."""
from __future__ import annotations

import io

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.replica_service import (
    EXIT_FAILED, EXIT_REFUSED, Refused, parse_command, serve)

POINT = "20261125T120000Z"


def test_allowed_commands_parse():
    assert parse_command("list") == ("list", [])
    assert parse_command("receive %s" % POINT) == ("receive", [POINT])
    assert parse_command(" delete %s  20261125T120100Z " % POINT) == ("delete", [POINT, "20261125T120100Z"])


@pytest.mark.parametrize("command", [
    "", "cat /etc/shadow", "rm -rf /", "list extra", "receive", "receive a b", "delete",
    "delete ../x", "delete /etc/passwd", "delete %s/../../x" % POINT, "delete .%s" % POINT,
    "receive ../%s" % POINT, "delete %s ../x" % POINT, "list; rm -rf /", "LIST", "scp -t /tmp",
    "internal-sftp", "delete %s\nrm -rf /" % POINT,
])
def test_everything_else_is_refused(command):
    with pytest.raises(Refused):
        parse_command(command)


def test_serve_refuses_with_a_message_and_touches_nothing(tmp_path):
    root = tmp_path / "replica" / "data"
    err = io.StringIO()
    assert serve(str(root), "cat /etc/shadow", io.BytesIO(), io.StringIO(), err) == EXIT_REFUSED
    assert "refused" in err.getvalue() and "list | receive NAME | delete NAME" in err.getvalue()
    assert not root.exists()


def test_serve_wants_an_absolute_root(tmp_path):
    err = io.StringIO()
    assert serve("relative/dir", "list", io.BytesIO(), io.StringIO(), err) == EXIT_FAILED
    assert "not an absolute path" in err.getvalue()
