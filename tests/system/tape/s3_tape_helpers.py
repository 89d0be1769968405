# -*- coding: utf-8 -*-
# Private to restorable.backup: helpers of the S3 tape library tests: an Object Lock bucket on the
# session's moto server, the library's environment file and driver settings.
"""A bucket per test (names never repeat), created by the "administrator" (boto3) with Object Lock
enabled, which also turns versioning on; the library then uses only its own keys, from its
environment file, through the collection's own S3 client."""
from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

_NUMBERS = itertools.count(1)


def lock_bucket(moto_server, stem: str = "vtl") -> str:
    """A new bucket with Object Lock enabled (no default retention: the library locks each version)."""
    name = "%s-%d-%d" % (stem, os.getpid(), next(_NUMBERS))
    moto_server.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def env_file(path: Path, moto_server) -> Path:
    """The library's keys, 0600, as apply writes them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        credentials = (moto_server.access_key, moto_server.secret_key)
        handle.write("AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n" % credentials)
    return path


def s3_settings(moto_server, bucket: str, env: Path, prefix: str = "vtl01") -> dict[str, Any]:
    """The "s3" object of a library configuration."""
    return {"endpoint": moto_server.endpoint, "bucket": bucket, "region": moto_server.region, "prefix": prefix,
            "env_file": str(env), "archive_storage_class": "DEEP_ARCHIVE"}


def versions(moto_server, bucket: str, key: str) -> list[dict[str, Any]]:
    """Every version of a key, as the administrator sees it (newest first)."""
    answer = moto_server.client().list_object_versions(Bucket=bucket, Prefix=key)
    return [item for item in answer.get("Versions", []) if item["Key"] == key]


def files_below(path: Path) -> list[Path]:
    return [Path(folder) / name for folder, _dirs, names in os.walk(path) for name in names]
