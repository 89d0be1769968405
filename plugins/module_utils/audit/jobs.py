# -*- coding: utf-8 -*-
# Private to restorable.backup: the audit's view of the jobs of a host: each job's status document
# with the identity of the copy it writes (tier, dataset, target) and whether that copy still exists.
from __future__ import annotations

import glob
import os
from typing import Any

from ..core.jobspec import DATASET_TAG_PREFIX, ConfigError, JobConfig, job_config_path, load_job_config
from ..core.layout import HostLayout
from ..core.status import StatusStore
from ..snapshot.group import SNAPSHOT_STATUS_PREFIX

DEFAULT_REGION = "us-east-1"


class S3Location:
    """Endpoint, bucket and key prefix of a restic S3 repository URL (s3:http://host:port/bucket/prefix)."""

    def __init__(self, url: str) -> None:
        rest = url[len("s3:"):]
        scheme = ""
        if "://" in rest:
            scheme, rest = rest.split("://", 1)
            scheme += "://"
        host, _sep, path = rest.partition("/")
        bucket, _sep, prefix = path.partition("/")
        self.endpoint = (scheme or "https://") + host
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def key(self, name: str) -> str:
        return "%s/%s" % (self.prefix, name) if self.prefix else name


def job_names(root: str) -> list[str]:
    return sorted(os.path.basename(p)[:-len(".json")] for p in glob.glob(job_config_path(root, "*")))


def s3_client(config: JobConfig) -> tuple[Any, S3Location]:
    """An S3Client of the job's repository bucket (loaded on first use: most hosts have no S3 target)."""
    from ..storage.s3api import S3Client  # pylint: disable=import-outside-toplevel
    location = S3Location(config.repository)
    client = S3Client(location.endpoint, location.bucket, DEFAULT_REGION, config.env_file or "", timeout=15.0)
    # The keys file of a target may name its region too (the agent tier writes AWS_DEFAULT_REGION there).
    client.region = client.credentials().get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    return client, location


def target_of(config: JobConfig, root: str) -> str | None:
    """The policy target a job writes to: as its evidence section names it, else from its repository
    password (or S3 keys) file, named after the target in the host's secrets directory; a job without
    one (CDP, array) names its tape library in its options."""
    if config.evidence is not None and config.evidence.job.get("target"):
        return str(config.evidence.job["target"])
    secrets_dir = HostLayout(root).secrets_dir
    for path, suffix in ((config.password_file, ".password"), (config.env_file or "", ".env")):
        if path and os.path.dirname(path) == secrets_dir and path.endswith(suffix):
            return os.path.basename(path)[:-len(suffix)]
    export = (config.options or {}).get("export") or {}
    if export.get("library_config"):
        return os.path.basename(export["library_config"]).rsplit(".", 1)[0]
    return None


def dataset_of(config: JobConfig) -> str:
    """As the evidence section names it, else: further copies of a dataset carry the dataset's own
    tag (dataset:<name>) besides their job name."""
    if config.evidence is not None and config.evidence.job.get("dataset"):
        return str(config.evidence.job["dataset"])
    for tag in config.tags:
        if tag.startswith(DATASET_TAG_PREFIX):
            return tag[len(DATASET_TAG_PREFIX):]
    return config.dataset


def repository_present(config: JobConfig) -> tuple[bool | None, str]:
    """Whether the copy the job writes still exists (its restic config object); None: cannot tell here."""
    url = config.repository
    if not url:
        return None, "no repository"
    if url.startswith("s3:"):
        from ..storage.s3api import S3Error  # pylint: disable=import-outside-toplevel
        try:
            client, location = s3_client(config)
            try:
                found = client.head(location.key("config")).status == 200
            finally:
                client.close()
        except S3Error as exc:
            return None, "cannot read %s: %s" % (url, exc)
        return found, "" if found else "repository %s has no config object" % url
    if "://" in url or url.startswith(("sftp:", "rest:", "b2:", "azure:", "gs:", "rclone:", "swift:")):
        return None, "not checked from the host"
    found = os.path.exists(os.path.join(url, "config"))
    return found, "" if found else "repository %s does not exist" % url


def job_documents(root: str) -> tuple[dict[str, dict[str, Any]], dict[str, JobConfig], list[str]]:
    """(status document with its identity by job name, configurations by job name, problems)."""
    jobs: dict[str, dict[str, Any]] = {}
    configs: dict[str, JobConfig] = {}
    problems = []
    for name in job_names(root):
        try:
            config = load_job_config(job_config_path(root, name))
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        configs[name] = config
        document = StatusStore(config.status_dir, config.dataset).load()
        present, detail = repository_present(config)
        document["job"] = {"tier": config.tier, "dataset": dataset_of(config), "target": target_of(config, root),
                           "present": present, "detail": detail}
        jobs[name] = document
    return jobs, configs, problems


def snapshot_groups(status_dir: str) -> dict[str, dict[str, Any]]:
    """The status of each consistency group's last snapshot run, by group name."""
    groups = {}
    for path in sorted(glob.glob(os.path.join(status_dir, SNAPSHOT_STATUS_PREFIX + "*.json"))):
        name = os.path.basename(path)[len(SNAPSHOT_STATUS_PREFIX):-len(".json")]
        groups[name] = StatusStore(status_dir, SNAPSHOT_STATUS_PREFIX + name).load()
    return groups
