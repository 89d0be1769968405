# -*- coding: utf-8 -*-
# Private to restorable.backup: scheduling the agent jobs and restore drills on a host.
# A systemd service + timer pair where systemd runs, a cron.d file elsewhere. Both start
# the same standalone program; each host's start is spread over the jitter by a stable
# hash of host and dataset, so a fleet does not hit its repository at the same second.
from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass

from ..core.layout import DEFAULT_INSTALL_DIR, PACKAGE_NAME

DEFAULT_PYTHON = "/usr/bin/python3"
# Exit codes 75 (deferred) and 76 (locked) are outcomes by design, not unit failures.
SUCCESS_EXIT_STATUS = "75 76"
# Drills are not pinned to the second: a few minutes of spread keep drill hosts that serve
# many sources from starting every restore at once.
DRILL_RANDOMIZED_DELAY = "5min"


def spread_offset(host: str, dataset: str, span_seconds: int) -> int:
    """A stable offset in [0, span_seconds) for this host and dataset (sha256, not hash())."""
    if span_seconds <= 0:
        return 0
    digest = hashlib.sha256(("%s\0%s" % (host, dataset)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % int(span_seconds)


def unit_base_name(dataset: str) -> str:
    return "restorable-backup-%s" % dataset


@dataclass
class AgentJob:
    """What the scheduler must start: the job config of a dataset, when, and how."""

    dataset: str
    config_path: str
    calendar: str
    delay_seconds: int = 0
    python: str = DEFAULT_PYTHON
    install_dir: str = DEFAULT_INSTALL_DIR


def agent_argv(job: AgentJob, quiet: bool = False) -> list[str]:
    argv = [job.python, "-m", PACKAGE_NAME, "run", "--config", job.config_path]
    if job.delay_seconds:
        argv += ["--delay", str(int(job.delay_seconds))]
    if quiet:
        argv.append("--quiet")
    return argv


def render_systemd_units(job: AgentJob) -> dict[str, str]:
    """{unit file name: text} for the service and its timer."""
    base = unit_base_name(job.dataset)
    exec_start = " ".join(_systemd_quote(arg) for arg in agent_argv(job))
    head = _oneshot_service("Restorable backup of dataset %s" % job.dataset, job.config_path, job.install_dir, exec_start)
    service = "\n".join(head + [
        "SuccessExitStatus=%s" % SUCCESS_EXIT_STATUS,
        # On stop, SIGTERM goes to the runner only: it stops restic with SIGINT (restic then
        # removes its repository lock) and still runs the post hooks; stragglers get SIGKILL.
        "KillMode=mixed",
        "",
    ])
    timer = _timer("Schedule of the restorable backup of dataset %s" % job.dataset, job.calendar, base, "AccuracySec=1s")
    return {base + ".service": service, base + ".timer": timer}


def render_cron_file(job: AgentJob, user: str = "root") -> str:
    """An /etc/cron.d file for hosts without systemd."""
    command = "cd / && PYTHONPATH=%s %s" % (shlex.quote(job.install_dir), " ".join(shlex.quote(a) for a in agent_argv(job, quiet=True)))
    return _cron_file("backup of dataset %s" % job.dataset, job.calendar, user, command)


def _cron_file(what: str, calendar: str, user: str, command: str) -> str:
    return "\n".join([
        "# Managed by restorable.backup (Ansible): %s; changes are overwritten." % what,
        "SHELL=/bin/sh",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "%s %s %s" % (calendar_to_cron(calendar), user, command.replace("%", "\\%")),
        "",
    ])


def _timer(description: str, calendar: str, base: str, timing: str) -> str:
    return "\n".join([
        "# Managed by restorable.backup (Ansible); changes are overwritten.",
        "[Unit]",
        "Description=%s" % description,
        "",
        "[Timer]",
        "OnCalendar=%s" % calendar,
        # Catch up a run missed while the host was off (a backup's window still applies).
        "Persistent=true",
        timing,  # how exactly the start follows the calendar
        "Unit=%s.service" % base,
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ])


def _oneshot_service(description: str, config_path: str, install_dir: str, exec_start: str) -> list[str]:
    """The unit and service lines agent jobs and drills share (up to ExecStart)."""
    return [
        "# Managed by restorable.backup (Ansible); changes are overwritten.",
        "[Unit]",
        "Description=%s" % description,
        "Wants=network-online.target",
        "After=network-online.target",
        "ConditionPathExists=%s" % _systemd_escape(config_path),
        "",
        "[Service]",
        "Type=oneshot",
        "Environment=%s" % _systemd_quote("PYTHONPATH=" + install_dir),
        "WorkingDirectory=/",
        "UMask=0077",
        "ExecStart=%s" % exec_start,
    ]


def cron_file_name(dataset: str) -> str:
    # cron ignores files in /etc/cron.d whose names contain dots.
    return unit_base_name(dataset)


# --- restore drills ----------------------------------------------------------------------------

def drill_unit_base_name(name: str) -> str:
    return "restorable-drill-%s" % name


@dataclass
class DrillJob:
    """A scheduled restore drill: its configuration on the drill host and its calendar."""

    name: str
    config_path: str
    calendar: str
    python: str = DEFAULT_PYTHON
    install_dir: str = DEFAULT_INSTALL_DIR


def drill_argv(job: DrillJob, quiet: bool = False) -> list[str]:
    argv = [job.python, "-m", PACKAGE_NAME, "drill", "--config", job.config_path]
    if quiet:
        argv.append("--quiet")
    return argv


def render_drill_systemd_units(job: DrillJob) -> dict[str, str]:
    """{unit file name: text} for the drill's service and its timer."""
    base = drill_unit_base_name(job.name)
    exec_start = " ".join(_systemd_quote(arg) for arg in drill_argv(job))
    service = "\n".join(_oneshot_service("Restorable restore drill %s" % job.name, job.config_path, job.install_dir, exec_start) + [""])
    timer = _timer("Schedule of the restorable restore drill %s" % job.name, job.calendar, base,
                   "RandomizedDelaySec=%s" % DRILL_RANDOMIZED_DELAY)
    return {base + ".service": service, base + ".timer": timer}


def render_drill_cron_file(job: DrillJob, user: str = "root") -> str:
    """An /etc/cron.d file for drill hosts without systemd."""
    argv = " ".join(shlex.quote(a) for a in drill_argv(job, quiet=True))
    # umask: the evidence written on the drill host stays private, as under systemd's UMask.
    command = "cd / && umask 077 && PYTHONPATH=%s %s" % (shlex.quote(job.install_dir), argv)
    return _cron_file("restore drill %s" % job.name, job.calendar, user, command)


def _systemd_escape(text: str) -> str:
    return text.replace("%", "%%")


def _systemd_quote(arg: str) -> str:
    arg = _systemd_escape(arg).replace("$", "$$")
    if re.search(r"[\s\"'\\;]", arg):
        return '"%s"' % arg.replace("\\", "\\\\").replace('"', '\\"')
    return arg


# --- systemd calendar expressions to cron ---------------------------------------------------

_SHORTCUTS = {
    "minutely": "* * * * *", "hourly": "0 * * * *", "daily": "0 0 * * *", "weekly": "0 0 * * 1",
    "monthly": "0 0 1 * *", "quarterly": "0 0 1 1,4,7,10 *", "semiannually": "0 0 1 1,7 *",
    "yearly": "0 0 1 1 *", "annually": "0 0 1 1 *",
}
_DAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 0}
_DAY_NAMES = {"monday": "mon", "tuesday": "tue", "wednesday": "wed", "thursday": "thu", "friday": "fri",
              "saturday": "sat", "sunday": "sun"}


class CalendarError(ValueError):
    """The calendar expression has no cron equivalent (or is not one systemd reads)."""


def calendar_to_cron(calendar: str) -> str:
    """The five cron fields of a systemd OnCalendar expression.

    Covered: the shortcuts (daily, weekly, ...), an optional weekday list/range, a date
    of the form *-*-DD or *-MM-DD, and HH:MM[:00] with lists, ranges (a..b) and steps (a/b).
    """
    text = calendar.strip()
    if text.lower() in _SHORTCUTS:
        return _SHORTCUTS[text.lower()]
    parts = text.split()
    weekdays, date, clock = "*", "*-*-*", "00:00:00"
    if parts and re.match(r"^[A-Za-z]", parts[0]):
        weekdays = _weekdays(parts.pop(0), calendar)
    for part in parts:
        if ":" in part:
            clock = part
        elif "-" in part:
            date = part
        else:
            raise CalendarError("calendar %r: cannot read %r (expected a date *-*-* or a time HH:MM)" % (calendar, part))
    if len(parts) > 2:
        raise CalendarError("calendar %r: too many parts" % calendar)
    pieces = date.split("-")
    if len(pieces) == 2:
        pieces = ["*"] + pieces
    if len(pieces) != 3:
        raise CalendarError("calendar %r: the date must be YEAR-MONTH-DAY" % calendar)
    year, month, day = pieces
    if year != "*":
        raise CalendarError("calendar %r: cron cannot select years" % calendar)
    times = clock.split(":")
    if len(times) == 2:
        times.append("00")
    if len(times) != 3:
        raise CalendarError("calendar %r: the time must be HH:MM[:SS]" % calendar)
    hour, minute, second = times
    if not re.match(r"^0{1,2}$", second):
        raise CalendarError("calendar %r: cron starts jobs on whole minutes only (seconds must be 00)" % calendar)
    return " ".join([_field(minute, 0, 59, calendar), _field(hour, 0, 23, calendar), _field(day, 1, 31, calendar),
                     _field(month, 1, 12, calendar), weekdays])


def _field(text: str, low: int, high: int, calendar: str) -> str:
    out = []
    for part in text.split(","):
        if part == "*":
            out.append("*")
            continue
        match = re.match(r"^(\*|\d+)(?:\.\.(\d+))?(?:/(\d+))?$", part)
        if not match:
            raise CalendarError("calendar %r: %r has no cron equivalent" % (calendar, part))
        first, last, step = match.groups()
        if first == "*":
            if last:
                raise CalendarError("calendar %r: %r is not valid" % (calendar, part))
            out.append("*/%d" % int(step) if step else "*")
            continue
        start = int(first)
        end = int(last) if last else (high if step else start)
        if not (low <= start <= high and low <= end <= high and start <= end):
            raise CalendarError("calendar %r: %r is out of range %d..%d" % (calendar, part, low, high))
        item = str(start) if start == end else "%d-%d" % (start, end)
        if step:
            item = "%d-%d/%d" % (start, end, int(step))
        out.append(item)
    return ",".join(out)


def _weekdays(text: str, calendar: str) -> str:
    days: set[int] = set()
    for part in text.split(","):
        names = [_day_number(name, calendar) for name in part.split("..")]
        if len(names) == 1:
            days.add(names[0])
        elif len(names) == 2:
            first, last = names
            day = first
            # systemd ranges go Mon..Sun; walk forward so Fri..Mon wraps over the weekend.
            while True:
                days.add(day)
                if day == last:
                    break
                day = (day + 1) % 7
        else:
            raise CalendarError("calendar %r: %r is not a weekday range" % (calendar, part))
    return ",".join(str(d) for d in sorted(days))


def _day_number(name: str, calendar: str) -> int:
    key = name.lower()
    key = _DAY_NAMES.get(key, key)
    if key not in _DAYS:
        raise CalendarError("calendar %r: %r is not a weekday" % (calendar, name))
    return _DAYS[key]
