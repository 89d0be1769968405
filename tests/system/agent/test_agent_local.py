# -*- coding: utf-8 -*-
"""The agent runner against a real restic repository on a local path."""
from __future__ import annotations

import datetime
import http.server
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from agent_helpers import random_tree, restic_snapshots, scan_cmdlines

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def dataset_snapshots(repo, dataset):
    return restic_snapshots(repo.env(), str(repo.path), "--tag", "dataset:" + dataset)


@pytest.fixture
def source(tmp_path) -> Path:
    root = tmp_path / "src"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "b.txt").write_text("beta\n")
    return root


def test_backup_success_records_status_metrics_and_canary(agent, restic_local_repo, source):
    repo = restic_local_repo
    config = agent.config("www", str(repo.path), repo.password_file, [str(source)], tags=["web"])
    run = agent.run(config)
    assert run.returncode == 0, run
    result = run.result
    assert result["result"] == "success" and result["reason"] == ""

    status = agent.status("www")
    assert status["result"] == "success"
    assert status["snapshot_id"] == result["snapshot_id"]
    assert status["bytes_processed"] > 0 and status["bytes_added"] > 0
    assert status["files_new"] >= 3 and status["files_changed"] == 0
    assert ISO.match(status["started"]) and ISO.match(status["finished"])
    assert status["duration_seconds"] > 0
    assert status["consecutive_failures"] == 0
    assert status["last_success"]["snapshot_id"] == result["snapshot_id"]
    assert [h["result"] for h in status["history"]] == ["success"]

    snapshots = dataset_snapshots(repo, "www")
    assert len(snapshots) == 1
    snapshot = snapshots[0]
    assert snapshot["short_id"] == result["snapshot_id"]
    assert snapshot["hostname"] == "testhost"
    assert set(snapshot["tags"]) == {"dataset:www", "web"}

    # The canary is in the snapshot, with the token the status recorded.
    canary = status["canary_path"]
    assert canary and status["canary_token"]
    dump = repo.restic("dump", result["snapshot_id"], canary)
    assert json.loads(dump.stdout)["token"] == status["canary_token"]

    metrics = agent.metrics("www")
    assert 'restorable_backup_last_result{dataset="www",host="testhost",result="success"} 1' in metrics
    last_success = re.search(r'^restorable_backup_last_success_timestamp_seconds\{[^}]*\} (\d+)$', metrics, re.M)
    assert last_success and abs(int(last_success.group(1)) - time.time()) < 300

    # The status subcommand prints the same document.
    shown = agent.cli("status", config)
    assert shown.returncode == 0 and json.loads(shown.stdout)["snapshot_id"] == result["snapshot_id"]


def test_retention_is_per_dataset_and_check_runs_every_n(agent, restic_local_repo, tmp_path):
    repo = restic_local_repo
    keep = random_tree(tmp_path / "keep", 2, 1000)
    rotate = random_tree(tmp_path / "rotate", 2, 1000)
    other = agent.config("other", str(repo.path), repo.password_file, [str(keep)])
    assert agent.run(other).returncode == 0
    config = agent.config("rotating", str(repo.path), repo.password_file, [str(rotate)],
                          retention={"last": 2, "prune_every": 1}, check={"every": 2, "read_data_subset": "50%"})
    results = []
    for _round in range(3):
        (rotate / "changing.txt").write_text(str(time.time()))
        run = agent.run(config)
        assert run.returncode == 0, run
        results.append(run.result)
    assert results[0]["check"] is None
    assert results[1]["check"] == {"ok": True, "read_data_subset": "50%", "message": "no errors were found"}
    assert results[2]["check"] is None
    assert results[2]["retention"]["kept"] == 2 and results[2]["retention"]["removed"] == 1
    assert [s["short_id"] for s in dataset_snapshots(repo, "rotating")] == [r["snapshot_id"] for r in results[1:]]
    # The other dataset in the same repository keeps its snapshot.
    assert len(dataset_snapshots(repo, "other")) == 1
    status = agent.status("rotating")
    assert status["backups_since_check"] == 1 and status["last_check"]["ok"] is True
    assert "restorable_backup_last_check_success" in agent.metrics("rotating")


def test_second_concurrent_run_is_refused(agent, restic_local_repo, source, tmp_path):
    repo = restic_local_repo
    started = tmp_path / "started"
    config = agent.config("busy", str(repo.path), repo.password_file, [str(source)], hooks={
        "pre": [{"argv": ["/bin/sh", "-c", "touch %s; sleep 3" % started]}]})
    first = agent.start(config)
    try:
        deadline = time.monotonic() + 30
        while not started.exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first run never reached its pre hook"
            time.sleep(0.05)
        second = agent.run(config)
        assert second.returncode == 76, second
        assert second.result["result"] == "locked"
        assert "in progress" in second.result["reason"] and "pid %d" % first.pid in second.result["reason"]
        out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert json.loads(out)["result"] == "success"
    # Only the run that held the lock is recorded.
    assert [h["result"] for h in agent.status("busy")["history"]] == ["success"]


def _make_load(minimum: float) -> subprocess.Popen | None:
    """Keep a CPU busy until the 1-minute load average shows it (an idle VM reads 0.00)."""
    if os.getloadavg()[0] > minimum:
        return None
    spinner = subprocess.Popen(["python3", "-c", "while True: pass"])
    deadline = time.monotonic() + 30
    while os.getloadavg()[0] <= minimum and time.monotonic() < deadline:
        time.sleep(0.5)
    return spinner


def test_load_gate_defers_then_ignore_load_runs(agent, restic_local_repo, source):
    repo = restic_local_repo
    config = agent.config("loaded", str(repo.path), repo.password_file, [str(source)], schedule={
        "load_gate": {"max_load_per_cpu": 0.0001, "max_deferral": "2s", "check_every": "1s"}})
    spinner = _make_load(0.0)
    try:
        run = agent.run(config)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    assert run.returncode == 75, run
    result = run.result
    assert result["result"] == "deferred"
    assert "above 0.0001" in result["reason"] and "max_deferral 2s" in result["reason"]
    assert 2 <= result["deferred_seconds"] < 10
    assert dataset_snapshots(repo, "loaded") == []
    status = agent.status("loaded")
    assert status["result"] == "deferred" and status["consecutive_deferrals"] == 1
    assert status["last_success"] is None
    assert 'result="deferred"} 1' in agent.metrics("loaded")

    forced = agent.run(config, "--ignore-load")
    assert forced.returncode == 0, forced
    assert agent.status("loaded")["consecutive_deferrals"] == 0


def test_window_closed_defers_without_touching_the_repository(agent, restic_local_repo, source):
    repo = restic_local_repo
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now + datetime.timedelta(hours=2), now + datetime.timedelta(hours=3)
    config = agent.config("nightly", str(repo.path), repo.password_file, [str(source)], schedule={
        "window": {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M"), "timezone": "UTC"}})
    run = agent.run(config)
    assert run.returncode == 75, run
    assert run.result["result"] == "deferred"
    assert "outside the backup window" in run.result["reason"]
    assert "opens at %s UTC" % start.strftime("%H:%M") in run.result["reason"]
    assert run.result["snapshot_id"] is None
    assert dataset_snapshots(repo, "nightly") == []

    # A window around now (in another zone, spanning midnight there or not) lets it run.
    berlin = now.astimezone(_zone("Europe/Berlin"))
    open_config = agent.config("nightly", str(repo.path), repo.password_file, [str(source)], schedule={
        "window": {"start": (berlin - datetime.timedelta(hours=1)).strftime("%H:%M"),
                   "end": (berlin + datetime.timedelta(hours=1)).strftime("%H:%M"), "timezone": "Europe/Berlin"}})
    assert agent.run(open_config).returncode == 0


def _zone(name):
    import zoneinfo
    return zoneinfo.ZoneInfo(name)


def test_wrong_password_is_clear_and_changes_nothing(agent, restic_local_repo, source, tmp_path, private_file):
    repo = restic_local_repo
    wrong = private_file(tmp_path / "wrong-password", "not-the-password\n")
    marker = tmp_path / "pre-ran"
    config = agent.config("guarded", str(repo.path), wrong, [str(source)],
                          hooks={"pre": [{"argv": ["/usr/bin/touch", str(marker)]}]})
    before = repo.restic("snapshots", "--json").stdout
    run = agent.run(config)
    assert run.returncode == 1, run
    reason = run.result["reason"]
    assert reason.startswith("wrong password for the restic repository at %s" % repo.path), reason
    assert "Traceback" not in run.stderr
    assert not marker.exists(), "no hook may run when the repository cannot be opened"
    assert repo.restic("snapshots", "--json").stdout == before
    assert repo.restic("list", "locks", "--no-lock").stdout.strip() == ""
    status = agent.status("guarded")
    assert status["result"] == "failed" and status["consecutive_failures"] == 1
    assert status["canary_token"] is None


def test_missing_repository_and_open_secret_file_are_clear(agent, restic_local_repo, source, tmp_path):
    repo = restic_local_repo
    missing = agent.config("nowhere", str(tmp_path / "no-repo"), repo.password_file, [str(source)])
    run = agent.run(missing)
    assert run.returncode == 1
    assert run.result["reason"].startswith("no restic repository at %s" % (tmp_path / "no-repo")), run.result
    assert not (tmp_path / "no-repo").exists(), "a scheduled run never creates a repository"

    loose = tmp_path / "loose-password"
    loose.write_text(repo.password + "\n")
    os.chmod(loose, 0o644)
    run = agent.run(agent.config("loose", str(repo.path), loose, [str(source)]))
    assert run.returncode == 1
    assert "readable by group or others (mode 0644)" in run.result["reason"]


def test_init_creates_the_repository_once(agent, restic_local_repo, source, tmp_path):
    config = agent.config("fresh", str(tmp_path / "new-repo"), restic_local_repo.password_file, [str(source)])
    first = agent.cli("init", config)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["created"] is True
    second = agent.cli("init", config)
    assert json.loads(second.stdout)["created"] is False
    assert agent.run(config).returncode == 0


def test_post_hooks_run_when_pre_hook_fails(agent, restic_local_repo, source, tmp_path):
    repo = restic_local_repo
    post_log = tmp_path / "post.log"
    config = agent.config("hooked", str(repo.path), repo.password_file, [str(source)], hooks={
        "pre": [{"argv": ["/bin/sh", "-c", "echo cannot pause app >&2; exit 3"]},
                {"argv": ["/usr/bin/touch", str(tmp_path / "second-pre")]}],
        "post": [{"argv": ["/bin/sh", "-c", "echo \"$RESTORABLE_PHASE $RESTORABLE_RESULT\" >> %s" % post_log]},
                 {"argv": ["/bin/sh", "-c", "exit 1"]},
                 {"argv": ["/bin/sh", "-c", "echo second post >> %s" % post_log]}]})
    run = agent.run(config)
    assert run.returncode == 1
    result = run.result
    assert result["reason"] == "pre hook /bin/sh exited 3: cannot pause app; backup not started"
    assert not (tmp_path / "second-pre").exists()
    # Every post hook ran, also after one of them failed, and knew the run failed.
    assert post_log.read_text() == "post failed\nsecond post\n"
    assert [h["phase"] for h in result["hooks"]] == ["pre", "post", "post", "post"]
    assert dataset_snapshots(repo, "hooked") == []


def test_hook_timeout_kills_the_hook(agent, restic_local_repo, source):
    repo = restic_local_repo
    config = agent.config("slowhook", str(repo.path), repo.password_file, [str(source)], hooks={
        "pre": [{"argv": ["/bin/sleep", "30"], "timeout": "1s"}]})
    run = agent.run(config)
    assert run.returncode == 1
    assert run.result["reason"].startswith("pre hook /bin/sleep timed out after 1s")
    assert run.seconds < 20


def test_secrets_stay_off_argv_and_out_of_records_with_bandwidth_nice_and_ionice(agent, restic_local_repo, tmp_path):
    repo = restic_local_repo
    data = random_tree(tmp_path / "payload", 2, 4 << 20)  # 8 MiB at 2 MiB/s: restic runs ~4 s
    config = agent.config("secretive", str(repo.path), repo.password_file, [str(data)], schedule={
        "bandwidth": {"upload_kbps": 2048}, "nice": 12, "ionice": {"class": "best-effort", "level": 6}})
    proc = agent.start(config)
    seen, hits, priorities = [], [], set()
    while proc.poll() is None:
        found, restic_argvs = scan_cmdlines([repo.password])
        hits += found
        # Only this test's restic: other tests on the machine may run restic too.
        for argv in (a for a in restic_argvs if str(repo.path) in a and str(data) in a):
            seen.append(argv)
            pid = argv[-1].split("=")[1]
            try:
                with open("/proc/%s/stat" % pid) as handle:
                    nice = int(handle.read().rsplit(")", 1)[1].split()[16])
                ionice = subprocess.run(["ionice", "-p", pid], capture_output=True, text=True,
                                        check=False).stdout.strip()
            except (OSError, ValueError):
                continue
            if ionice:
                priorities.add((nice, ionice))
        time.sleep(0.02)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert hits == []
    backups = [argv for argv in seen if "backup" in argv]
    assert backups, "the scan never saw restic backup running"
    argv = backups[0]
    assert argv[argv.index("--limit-upload") + 1] == "2048"
    assert (12, "best-effort: prio 6") in priorities, priorities
    assert result["duration_seconds"] >= 2.5, "8 MiB at 2 MiB/s cannot take %.1fs" % result["duration_seconds"]
    for text in (out, err, (agent.root / "status" / "secretive.json").read_text(), agent.metrics("secretive")):
        assert repo.password not in text


def test_killed_run_leaves_no_lock_that_blocks_the_next(agent, restic_local_repo, tmp_path):
    repo = restic_local_repo
    data = random_tree(tmp_path / "big", 2, 4 << 20)
    config = agent.config("killed", str(repo.path), repo.password_file, [str(data)],
                          schedule={"bandwidth": {"upload_kbps": 2048}}, retention={"last": 1})
    proc = agent.start(config)
    deadline = time.monotonic() + 60
    backups = []
    while not backups:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
        backups = [argv for argv in scan_cmdlines([])[1] if "backup" in argv and str(data) in argv]
    # restic locks the repository once it has opened it (key derivation first; slow on a busy machine).
    while not repo.restic("list", "locks", "--no-lock").stdout.strip():
        assert proc.poll() is None and time.monotonic() < deadline, "restic never locked the repository"
        time.sleep(0.1)
    # Power cut: the runner and restic (in a process group of its own) die at once, no cleanup.
    restic_pid = int(backups[0][-1].split("=")[1])
    os.killpg(proc.pid, signal.SIGKILL)
    os.kill(restic_pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while os.path.exists("/proc/%d" % restic_pid) and time.monotonic() < deadline:
        time.sleep(0.05)  # reaped by init once its parent is gone
    assert repo.restic("list", "locks", "--no-lock").stdout.strip() != "", "the killed restic left no lock"
    assert (agent.root / "status" / "killed.running").exists()

    # The next run, without the bandwidth cap to keep the test short.
    config = agent.config("killed", str(repo.path), repo.password_file, [str(data)],
                          retention={"last": 1, "prune_every": 1})
    run = agent.run(config)
    assert run.returncode == 0, run
    result = run.result
    assert result["unlocked_stale_locks"] is True
    assert any("was interrupted" in w for w in result["warnings"])
    assert result["retention"]["kept"] == 1  # forget --prune needs the exclusive lock
    assert repo.restic("list", "locks", "--no-lock").stdout.strip() == ""
    assert not (agent.root / "status" / "killed.running").exists()
    repo.restic("check")


class _PingRecorder(http.server.BaseHTTPRequestHandler):
    paths: list = []

    def do_POST(self):  # noqa: N802 (http.server API)
        length = int(self.headers.get("Content-Length", 0))
        type(self).paths.append((self.path, self.rfile.read(length).decode()))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_pings_start_success_and_fail_and_a_dead_ping_url_is_harmless(agent, restic_local_repo, source, tmp_path):
    repo = restic_local_repo
    _PingRecorder.paths = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PingRecorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = "http://127.0.0.1:%d/ping/abc" % server.server_port
        assert agent.run(agent.config("pinged", str(repo.path), repo.password_file, [str(source)],
                                      ping_url=url)).returncode == 0
        agent.run(agent.config("pinged", str(tmp_path / "absent"), repo.password_file, [str(source)], ping_url=url))
    finally:
        server.shutdown()
        server.server_close()
    paths = [path for path, _body in _PingRecorder.paths]
    assert paths == ["/ping/abc/start", "/ping/abc", "/ping/abc/start", "/ping/abc/fail"]
    assert "no restic repository" in _PingRecorder.paths[-1][1]

    dead = "http://127.0.0.1:%d/ping" % server.server_port  # closed now
    run = agent.run(agent.config("pinged", str(repo.path), repo.password_file, [str(source)], ping_url=dead))
    assert run.returncode == 0, run


def test_invalid_config_is_one_clear_line(agent, restic_local_repo, source):
    config = agent.config("broken", str(restic_local_repo.path), restic_local_repo.password_file, [str(source)],
                          schedule={"window": {"start": "25:00", "end": "06:00"}})
    run = agent.run(config)
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.strip() == ("restorable-agent: error: job config %s: schedule.window.start: expected a time "
                                  "HH:MM (24 hours), got '25:00'" % config)


def test_sigterm_during_a_pre_hook_still_runs_post_hooks(agent, restic_local_repo, source, tmp_path):
    repo = restic_local_repo
    paused, resumed = tmp_path / "paused", tmp_path / "resumed"
    config = agent.config("stopped", str(repo.path), repo.password_file, [str(source)], hooks={
        "pre": [{"argv": ["/bin/sh", "-c", "touch %s; sleep 60" % paused]}],
        "post": [{"argv": ["/bin/sh", "-c", "echo $RESTORABLE_RESULT > %s" % resumed]}]})
    proc = agent.start(config)
    deadline = time.monotonic() + 30
    while not paused.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)  # what systemd sends when the unit is stopped
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert json.loads(out)["reason"] == "interrupted by SIGTERM"
    assert resumed.read_text() == "failed\n", "the post hook (thaw, resume) must run"
    assert "Traceback" not in err
    status = agent.status("stopped")
    assert status["result"] == "failed" and not (agent.root / "status" / "stopped.running").exists()


def test_sigterm_during_backup_lets_restic_remove_its_lock(agent, restic_local_repo, tmp_path):
    repo = restic_local_repo
    data = random_tree(tmp_path / "slow", 2, 4 << 20)
    config = agent.config("stopping", str(repo.path), repo.password_file, [str(data)],
                          schedule={"bandwidth": {"upload_kbps": 1024}})
    proc = agent.start(config)
    deadline = time.monotonic() + 60
    while not any("backup" in argv and str(data) in argv for argv in scan_cmdlines([])[1]):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert json.loads(out)["reason"] == "interrupted by SIGTERM"
    assert repo.restic("list", "locks", "--no-lock").stdout.strip() == "", "restic got SIGINT and cleaned up"
    assert dataset_snapshots(repo, "stopping") == []
