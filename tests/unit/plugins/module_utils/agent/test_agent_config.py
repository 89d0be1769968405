# -*- coding: utf-8 -*-
"""Job configuration: parsing, errors that name the field, building it from the policy."""
from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import (
    ConfigError, JobConfig, job_config_path, load_job_config)

EXAMPLE = {
    "format": 1,
    "dataset": "www",
    "host": "web01",
    "repository": {"url": "s3:https://s3.example.org/acme-backup/hosts/web01",
                   "password_file": "/etc/restorable/www.password", "env_file": "/etc/restorable/www.env"},
    "paths": ["/var/www", "/etc/nginx"],
    "excludes": ["*.tmp"],
    "one_file_system": True,
    "tags": ["web"],
    "retention": {"last": 3, "daily": 7, "weekly": 4, "max_age": "90d"},
    "schedule": {
        "window": {"start": "22:00", "end": "06:00", "timezone": "Europe/Berlin"},
        "load_gate": {"max_load_per_cpu": 0.8, "max_deferral": "2h", "check_every": "1m"},
        "nice": 10, "ionice": {"class": "best-effort", "level": 7},
        "bandwidth": {"upload_kbps": 20000, "download_kbps": 50000}, "max_runtime": "6h",
    },
    "hooks": {"pre": [{"argv": ["/usr/local/bin/app-ctl", "pause"], "timeout": "30s", "env": {"APP_MODE": "backup"}}],
              "post": [{"argv": ["/usr/local/bin/app-ctl", "resume"]}]},
    "check": {"every": 7, "read_data_subset": "5%"},
    "ping_url": "https://hc.example.org/ping/abc/",
    "status_dir": "/var/lib/restorable",
    "metrics_dir": "/var/lib/prometheus/node-exporter",
    "canary": {"enabled": True},
    "restic": {"binary": "/usr/bin/restic", "cache_dir": "/var/cache/restorable/restic"},
    "history": 30,
}


def test_full_example():
    config = JobConfig.from_dict(copy.deepcopy(EXAMPLE))
    assert config.dataset == "www" and config.host == "web01"
    assert config.repository == "s3:https://s3.example.org/acme-backup/hosts/web01"
    assert config.env_file == "/etc/restorable/www.env"
    assert config.retention == {"last": 3, "daily": 7, "weekly": 4, "max_age": 90 * 86400}
    assert config.window.describe() == "22:00-06:00 Europe/Berlin"
    assert (config.load_gate.max_load_per_cpu, config.load_gate.max_deferral, config.load_gate.check_every) == (
        0.8, 7200, 60)
    assert (config.nice, config.ionice_class, config.ionice_level) == (10, "best-effort", 7)
    assert (config.limit_upload_kbps, config.limit_download_kbps, config.max_runtime) == (20000, 50000, 21600)
    assert config.pre_hooks[0].timeout == 30 and config.pre_hooks[0].env == {"APP_MODE": "backup"}
    assert config.post_hooks[0].timeout == 300
    assert (config.check.every, config.check.read_data_subset) == (7, "5%")
    assert config.ping_url == "https://hc.example.org/ping/abc"
    assert config.status_path == "/var/lib/restorable/www.json"
    assert config.lock_path == "/var/lib/restorable/www.lock"
    assert config.canary_file == "/var/lib/restorable/www.canary"
    assert config.metrics_path == "/var/lib/prometheus/node-exporter/restorable_www.prom"
    assert config.dataset_tag == "dataset:www"


def test_round_trip():
    config = JobConfig.from_dict(copy.deepcopy(EXAMPLE))
    again = JobConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again.to_dict() == config.to_dict()
    assert again.window == config.window and again.load_gate == config.load_gate


def test_prune_every_is_read_beside_the_keep_rules_and_written_back():
    document = copy.deepcopy(EXAMPLE)
    document["retention"]["prune_every"] = 3
    config = JobConfig.from_dict(document)
    assert config.prune_every == 3
    assert config.retention == {"last": 3, "daily": 7, "weekly": 4, "max_age": 90 * 86400}  # restic's keep rules only
    assert config.to_dict()["retention"]["prune_every"] == 3


def test_job_config_path():
    assert job_config_path("/srv/host1", "www") == "/srv/host1/etc/restorable/www.json"


def test_minimal_defaults():
    config = JobConfig.from_dict({"dataset": "www", "repository": {"url": "/srv/restic", "password_file": "/pw"},
                                  "paths": ["/var/www"]})
    assert config.window is None and config.load_gate is None and config.retention == {}
    assert config.check.every == 0 and config.canary is True and config.metrics_path is None
    assert config.prune_every == 7
    assert config.status_dir == "/var/lib/restorable"


def broken(path, value):
    doc = copy.deepcopy(EXAMPLE)
    target = doc
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[key]
    if value is KeyError:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return doc


@pytest.mark.parametrize("path, value, message", [
    ("repository.url", KeyError, "repository.url is required"),
    ("one_file_system", "yes", "one_file_system: expected a boolean, got str"),
    ("retention.max_age", "14 days", "retention.max_age: expected a duration"),
    ("retention.prune_every", "weekly", "retention.prune_every: expected an integer, got str"),
    ("schedule.window.start", "24:00", "schedule.window.start: expected a time HH:MM"),
    ("schedule.window.timezone", "Nowhere/City", "unknown time zone 'Nowhere/City'"),
    ("schedule.load_gate.check_every", "soon", "schedule.load_gate.check_every: expected a duration"),
    ("schedule.speed", 1, "schedule: unknown option speed"),
    ("tags", ["web", 7], "tags[1]: expected a string, got int"),
    ("schedule.nice", "low", "schedule.nice: expected an integer, got str"),
    ("hooks.post", [{"argv": ["/bin/true"], "shell": True}], "hooks.post[0]: unknown option shell"),
    ("format", 2, "format 2 is not supported by this agent"),
    ("bogus", 1, "document: unknown option bogus"),
])
def test_errors_name_the_field(path, value, message):
    # Version and shape only: whether a value is allowed is the policy schema's to say, before
    # the controller writes a job (the host does not judge values a second time).
    with pytest.raises(ConfigError) as error:
        JobConfig.from_dict(broken(path, value), source="/etc/restorable/www.json")
    assert str(error.value).startswith("job config /etc/restorable/www.json: ")
    assert message in str(error.value)


def test_load_job_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_job_config(str(tmp_path / "absent.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        load_job_config(str(bad))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(EXAMPLE))
    assert load_job_config(str(good)).source == str(good)


def test_schedule_calendar_and_jitter_are_accepted_and_ignored():
    doc = broken("schedule.calendar", "*-*-* 01:00:00")
    doc["schedule"]["jitter"] = "2h"
    JobConfig.from_dict(doc)


def test_a_cdp_job_may_have_no_repository_and_other_tiers_must():
    doc = copy.deepcopy(EXAMPLE)
    del doc["repository"]
    with pytest.raises(ConfigError, match="repository.url is required"):
        JobConfig.from_dict(doc)
    config = JobConfig.from_dict(dict(doc, tier="cdp"))
    assert (config.repository, config.password_file) == ("", "")
    # Written back, it still loads: no empty repository section that would claim a restic store.
    assert "url" not in config.to_dict()["repository"]
    assert JobConfig.from_dict(config.to_dict()).repository == ""
