# -*- coding: utf-8 -*-
"""systemd units and cron entries of scheduled restore drills."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.converge.units import (
    CalendarError, DrillJob, drill_unit_base_name, render_drill_cron_file, render_drill_systemd_units, unit_base_name)


def test_drill_units_start_the_drill_command_on_the_calendar():
    job = DrillJob("web1-weekly", "/etc/restorable/drills/web1-weekly.json", "Sun *-*-* 06:00:00")
    units = render_drill_systemd_units(job)
    assert sorted(units) == ["restorable-drill-web1-weekly.service", "restorable-drill-web1-weekly.timer"]
    service, timer = units["restorable-drill-web1-weekly.service"], units["restorable-drill-web1-weekly.timer"]
    assert ("ExecStart=/usr/bin/python3 -m restorable_agent drill --config /etc/restorable/drills/web1-weekly.json"
            in service.splitlines())
    assert "Environment=PYTHONPATH=/usr/local/lib/restorable" in service.splitlines()
    assert "UMask=0077" in service.splitlines()
    assert "ConditionPathExists=/etc/restorable/drills/web1-weekly.json" in service.splitlines()
    for line in ("OnCalendar=Sun *-*-* 06:00:00", "Persistent=true", "RandomizedDelaySec=5min",
                 "Unit=restorable-drill-web1-weekly.service", "WantedBy=timers.target"):
        assert line in timer.splitlines()
    # Drill units never collide with backup units of a dataset of the same name.
    assert drill_unit_base_name("www") != unit_base_name("www")


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_drill_units_pass_systemd_analyze_verify(tmp_path):
    python = sys.executable if os.path.isabs(sys.executable) else "/usr/bin/python3"
    job = DrillJob("web1-weekly", str(tmp_path / "drill 100%.json"), "Sat,Sun *-*-* 06:00:00", python=python,
                   install_dir=str(tmp_path / "lib"))
    paths = []
    for name, text in render_drill_systemd_units(job).items():
        path = tmp_path / name
        path.write_text(text)
        paths.append(str(path))
    result = subprocess.run(["systemd-analyze", "verify"] + paths, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "restorable-drill-web1-weekly" not in result.stderr, result.stderr


def test_drill_cron_file_runs_the_same_command_privately():
    text = render_drill_cron_file(DrillJob("web1-weekly", "/etc/restorable/drills/web1-weekly.json", "Sun *-*-* 06:00"))
    lines = text.splitlines()
    assert lines[0].startswith("# Managed by restorable.backup")
    assert lines[3] == ("0 6 * * 0 root cd / && umask 077 && PYTHONPATH=/usr/local/lib/restorable /usr/bin/python3 -m "
                        "restorable_agent drill --config /etc/restorable/drills/web1-weekly.json --quiet")


def test_drill_cron_file_refuses_a_calendar_cron_cannot_express():
    with pytest.raises(CalendarError):
        render_drill_cron_file(DrillJob("x", "/c.json", "*-*-* 06:00:30"))
