# -*- coding: utf-8 -*-
"""Start spread, systemd unit and cron rendering, calendar conversion."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.converge.units import (
    AgentJob, CalendarError, agent_argv, calendar_to_cron, cron_file_name, render_cron_file,
    render_systemd_units, spread_offset, unit_base_name)


def test_spread_is_deterministic_and_in_range():
    assert spread_offset("web01", "www", 7200) == spread_offset("web01", "www", 7200)
    offsets = {spread_offset("web%02d" % n, "www", 7200) for n in range(200)}
    assert all(0 <= o < 7200 for o in offsets)
    assert len(offsets) > 190, "hosts should land on distinct seconds"
    # Spread over the span, not bunched: every quarter of it gets hosts.
    assert {o * 4 // 7200 for o in offsets} == {0, 1, 2, 3}
    assert spread_offset("web01", "www", 7200) != spread_offset("web01", "db", 7200)


def test_spread_known_value_is_stable_across_python_runs():
    # hash() is salted per process; sha256 is not. Pin a value so a change is noticed.
    code = ("from ansible_collections.restorable.backup.plugins.module_utils.converge.units import spread_offset;"
            "print(spread_offset('web01', 'www', 86400))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), PYTHONHASHSEED="random"))
    assert int(out.stdout) == spread_offset("web01", "www", 86400)


def test_zero_span_means_no_offset():
    assert spread_offset("web01", "www", 0) == 0


JOB = AgentJob("www", "/etc/restorable/www.json", "*-*-* 01:00:00", 1234)


def test_systemd_units():
    units = render_systemd_units(JOB)
    assert sorted(units) == ["restorable-backup-www.service", "restorable-backup-www.timer"]
    service = units["restorable-backup-www.service"]
    assert "Type=oneshot\n" in service
    assert "Environment=PYTHONPATH=/usr/local/lib/restorable\n" in service
    assert ("ExecStart=/usr/bin/python3 -m restorable_agent run --config /etc/restorable/www.json --delay 1234\n"
            in service)
    assert "SuccessExitStatus=75 76\n" in service and "KillMode=mixed\n" in service
    timer = units["restorable-backup-www.timer"]
    assert "OnCalendar=*-*-* 01:00:00\n" in timer and "Persistent=true\n" in timer
    assert "Unit=restorable-backup-www.service\n" in timer and "WantedBy=timers.target\n" in timer


def test_systemd_quoting_of_odd_paths():
    job = AgentJob("www", "/etc/restorable dir/100%.json", "daily", install_dir="/opt/my lib")
    service = render_systemd_units(job)["restorable-backup-www.service"]
    assert 'Environment="PYTHONPATH=/opt/my lib"' in service
    assert 'run --config "/etc/restorable dir/100%%.json"' in service


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_units_pass_systemd_analyze_verify(tmp_path):
    python = sys.executable if os.path.isabs(sys.executable) else "/usr/bin/python3"
    job = AgentJob("www", str(tmp_path / "www.json"), "Mon..Fri *-*-* 01:30:00", 77, python=python,
                   install_dir=str(tmp_path / "lib"))
    paths = []
    for name, text in render_systemd_units(job).items():
        path = tmp_path / name
        path.write_text(text)
        paths.append(str(path))
    result = subprocess.run(["systemd-analyze", "verify"] + paths, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "restorable-backup-www" not in result.stderr, result.stderr


def test_cron_file():
    text = render_cron_file(AgentJob("www", "/etc/restorable/www.json", "Mon..Fri *-*-* 01:30", 1234))
    lines = text.splitlines()
    assert lines[1:3] == ["SHELL=/bin/sh", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    assert lines[3] == ("30 1 * * 1,2,3,4,5 root cd / && PYTHONPATH=/usr/local/lib/restorable /usr/bin/python3 -m "
                        "restorable_agent run --config /etc/restorable/www.json --delay 1234 --quiet")
    assert "." not in cron_file_name("www") and cron_file_name("www") == unit_base_name("www")


def test_cron_escapes_percent():
    text = render_cron_file(AgentJob("www", "/etc/restorable/100%.json", "daily"))
    assert "/etc/restorable/100\\%.json" in text


@pytest.mark.parametrize("calendar, cron", [
    ("daily", "0 0 * * *"), ("hourly", "0 * * * *"), ("weekly", "0 0 * * 1"), ("monthly", "0 0 1 * *"),
    ("*-*-* 01:00:00", "0 1 * * *"), ("*-*-* 23:45", "45 23 * * *"), ("Sun *-*-* 06:00:00", "0 6 * * 0"),
    ("Sat,Sun 03:00", "0 3 * * 0,6"), ("Fri..Mon 22:00", "0 22 * * 0,1,5,6"), ("*:0/15", "0-59/15 * * * *"),
    ("*-*-* 0/6:00:00", "0 0-23/6 * * *"), ("*-*-1 04:00", "0 4 1 * *"), ("*-1,7-1 00:00", "0 0 1 1,7 *"),
    ("*-*-* 01,13:30", "30 1,13 * * *"), ("*-*-* 8..18:00", "0 8-18 * * *"), ("Mon", "0 0 * * 1")])
def test_calendar_to_cron(calendar, cron):
    assert calendar_to_cron(calendar) == cron


@pytest.mark.parametrize("calendar, message", [
    ("*-*-* 01:00:30", "whole minutes"), ("2027-*-* 01:00", "years"), ("*-*~1 01:00", "no cron equivalent"),
    ("Funday 01:00", "not a weekday"), ("*-*-* 25:00", "out of range")])
def test_calendar_without_cron_equivalent(calendar, message):
    with pytest.raises(CalendarError, match=message):
        calendar_to_cron(calendar)


def test_agent_argv_quiet_for_cron():
    assert agent_argv(AgentJob("www", "/c.json", "daily"), quiet=True) == [
        "/usr/bin/python3", "-m", "restorable_agent", "run", "--config", "/c.json", "--quiet"]
