# -*- coding: utf-8 -*-
"""The array tier's job options: what parses, and errors that name the field."""
from __future__ import annotations

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import ConfigError, JobConfig
from ansible_collections.restorable.backup.plugins.module_utils.tiers.array.options import options_from_config
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.thinning import ThinRule


def config(**options) -> JobConfig:
    settings = dict({"volumes": ["/srv/pg", "/srv/pgwal"]}, **options)
    document = {"format": 1, "tier": "array", "dataset": "pgarr", "options": settings}
    return JobConfig.from_dict(document, source="/etc/restorable/pgarr.json")


def test_a_full_configuration_parses():
    options = options_from_config(config(
        provider="btrfs", snapshot_dir="/srv/.snaps", retention={"last": 10, "hourly": 24, "max_age": "2d"},
        thinning=[{"older_than": "1h", "keep_every": 900}], rpo="15m",
        export={"library_config": "/etc/restorable/tape/vtl01.json", "pool": "daily", "every": 2, "chain_length": 5}))
    assert options.volumes == ["/srv/pg", "/srv/pgwal"] and options.snapshot_dir == "/srv/.snaps"
    assert options.retention == {"last": 10, "hourly": 24, "max_age": 172800}
    assert options.thinning == [ThinRule(3600, 900)] and options.rpo == 900
    assert (options.export.pool, options.export.every, options.export.chain_length) == ("daily", 2, 5)


def test_defaults_keep_everything_and_export_nothing():
    options = options_from_config(config())
    assert options.provider == "btrfs" and options.export is None and not options.thins


@pytest.mark.parametrize("options, message", [
    ({"provider": "zfs"}, "options.provider: zfs is accepted by the policy schema but cannot run in this version"),
    ({"provider": "ebs"}, "options.provider: ebs is accepted"),
    ({"provider": "nfs"}, "options.provider: unknown provider 'nfs'"),
    ({"volumes": []}, "options.volumes: at least one volume is required"),
    ({"volumes": ["srv/pg"]}, r"options.volumes\[0\]: expected an absolute path"),
    ({"volumes": ["/a/pg", "/b/pg"]}, "options.volumes: the volumes. names \\(last path components\\) must differ"),
    ({"volumes": ["/a/pg", "/a/pg/"]}, "options.volumes: a volume is listed twice"),
    ({"snapshot_dir": "/srv/pg/.snaps"}, "options.snapshot_dir: the snapshots cannot live inside volume /srv/pg"),
    ({"retention": {"daily": "7"}}, "options.retention.daily: expected an integer"),
    ({"retention": {"dayly": 7}}, "options.retention: unknown option dayly"),
    ({"thinning": [{"older_than": 60}]}, r"options.thinning\[0\]: older_than and keep_every are required"),
    ({"thinning": [{"older_than": 60, "keep_every": 0}]}, r"options.thinning\[0\]: keep_every must be at least"),
    ({"export": {"pool": "daily"}}, "options.export.library_config is required"),
    ({"export": {"library_config": "/x.json"}}, "options.export.pool is required"),
    ({"export": {"library_config": "/x.json", "pool": "p", "every": 0}}, "options.export.every: expected at least 1"),
    ({"export": {"library_config": "/x.json", "pool": "p", "chain_length": 0}}, "options.export.chain_length"),
    ({"export": {"library_config": "/x.json", "pool": "p", "chain": 3}}, "options.export: unknown option chain"),
    ({"interval": 5}, "options: unknown option interval"),
])
def test_errors_name_the_file_and_the_field(options, message):
    with pytest.raises(ConfigError, match="job config /etc/restorable/pgarr.json: " + message):
        options_from_config(config(**options))
