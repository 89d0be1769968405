# -*- coding: utf-8 -*-
# Private to restorable.backup: S3 targets as the policy declares them, set up from the
# controller with boto3: the bucket with versioning, Object Lock default retention and
# lifecycle, and, where asked, one IAM user per host that may touch only its own prefix.
# The target's own keys never leave the controller when credentials are scoped.
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field

try:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError
    HAS_BOTO3 = True
except ImportError:
    HAS_BOTO3 = False
    BotoCoreError = ClientError = Exception

DEFAULT_STORE = "~/.local/share/restorable/credentials"
LIFECYCLE_RULE_ID = "restorable"


class ProvisioningFailed(Exception):
    pass


def host_prefix(target: dict, host: str) -> str:
    """The key prefix of a host's repository (see AgentPlanner._url)."""
    return "/".join([p for p in target.get("prefix", "").split("/") if p] + [host])


def credential_path(store: str, target: dict, host: str) -> str:
    endpoint = hashlib.sha256(target.get("endpoint", "aws").encode("utf-8")).hexdigest()[:12]
    return os.path.join(os.path.expanduser(store), endpoint, target["bucket"], host + ".json")


def read_host_credentials(store: str, target: dict, host: str) -> dict | None:
    try:
        with open(credential_path(store, target, host), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def scoped_policy(bucket: str, prefix: str) -> dict:
    """Read, write and delete objects below the prefix only (restic prunes and removes its locks).
    Listing stays bucket-wide: restic's HeadBucket needs s3:ListBucket, which S3 evaluates without
    a prefix, so a prefix condition would lock restic out; other hosts' key names become visible,
    never their content."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
             "Resource": ["arn:aws:s3:::%s/%s/*" % (bucket, prefix)]},
            {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": ["arn:aws:s3:::%s" % bucket]},
        ],
    }


@dataclass
class Provisioning:
    actions: list = field(default_factory=list)
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.actions)


class S3Provisioner:
    def __init__(self, check_mode: bool, store: str = DEFAULT_STORE) -> None:
        self.check_mode = check_mode
        self.store = store
        self.result = Provisioning()

    def _client(self, service: str, target: dict):
        return boto3.client(
            service,
            endpoint_url=target.get("endpoint"),
            region_name=target.get("region", "us-east-1"),
            aws_access_key_id=target["access_key_id"],
            aws_secret_access_key=target["secret_access_key"],
        )

    def _act(self, text: str, call, *args, **kwargs) -> None:
        self.result.actions.append(("would " if self.check_mode else "") + text)
        if not self.check_mode:
            call(*args, **kwargs)

    def bucket(self, name: str, target: dict) -> None:
        """Bring the bucket to the declared state; name is the target name for messages."""
        s3 = self._client("s3", target)
        bucket = target["bucket"]
        try:
            current = self._bucket_state(s3, bucket)
            wanted = self._wanted_state(target)
            self.result.before[name] = current
            self.result.after[name] = wanted
            if current is None:
                self._create(s3, bucket, target)
                current = {"versioning": False, "object_lock": None, "lifecycle": None}
            if wanted["versioning"] and not current["versioning"]:
                self._act("enable versioning of bucket %s" % bucket, s3.put_bucket_versioning,
                          Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            if wanted["object_lock"] and wanted["object_lock"] != current["object_lock"]:
                lock = wanted["object_lock"]
                self._act("set Object Lock default retention of bucket %s to %s for %d days" % (bucket, lock["mode"], lock["days"]),
                          s3.put_object_lock_configuration, Bucket=bucket, ObjectLockConfiguration={
                              "ObjectLockEnabled": "Enabled",
                              "Rule": {"DefaultRetention": {"Mode": lock["mode"].upper(), "Days": lock["days"]}}})
            if wanted["lifecycle"] and wanted["lifecycle"] != current["lifecycle"]:
                self._act("set lifecycle of bucket %s" % bucket, s3.put_bucket_lifecycle_configuration,
                          Bucket=bucket, LifecycleConfiguration={"Rules": [_lifecycle_rule(wanted["lifecycle"])]})
        except (BotoCoreError, ClientError) as exc:
            raise ProvisioningFailed("restorable_targets.%s: bucket %s at %s: %s" % (name, bucket, target.get("endpoint", "AWS"), exc)) from None

    def _create(self, s3, bucket: str, target: dict) -> None:
        args = {"Bucket": bucket}
        if target.get("object_lock"):
            args["ObjectLockEnabledForBucket"] = True
        region = target.get("region", "us-east-1")
        if region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": region}
        self._act("create bucket %s" % bucket, s3.create_bucket, **args)

    @staticmethod
    def _wanted_state(target: dict) -> dict:
        lock = target.get("object_lock")
        return {
            # Object Lock needs versioning; restic works on either.
            "versioning": bool(target.get("versioning") or lock),
            "object_lock": {"mode": lock["mode"], "days": lock["days"]} if lock else None,
            "lifecycle": dict(target["lifecycle"]) if target.get("lifecycle") else None,
        }

    @staticmethod
    def _bucket_state(s3, bucket: str) -> dict | None:
        try:
            s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
                return None
            raise
        versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled"
        try:
            rule = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"].get("Rule", {})
            retention = rule.get("DefaultRetention", {})
            lock = {"mode": retention["Mode"].lower(), "days": retention["Days"]} if "Days" in retention else None
        except ClientError:
            lock = None
        try:
            rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
            ours = [r for r in rules if r.get("ID") == LIFECYCLE_RULE_ID]
            lifecycle = _lifecycle_settings(ours[0]) if ours else None
        except ClientError:
            lifecycle = None
        return {"versioning": versioning, "object_lock": lock, "lifecycle": lifecycle}

    def host_credentials(self, name: str, target: dict, host: str) -> None:
        """An IAM user for the host, limited to its prefix, with its key kept in the store."""
        iam = self._client("iam", target)
        user = _iam_user_name(target["bucket"], host)
        policy = json.dumps(scoped_policy(target["bucket"], host_prefix(target, host)), sort_keys=True)
        stored = read_host_credentials(self.store, target, host)
        try:
            existing_keys = self._user_keys(iam, user)
            if existing_keys is None:
                self._act("create IAM user %s for host %s" % (user, host), iam.create_user, UserName=user)
                existing_keys = []
            current_policy = self._user_policy(iam, user)
            if current_policy != json.loads(policy):
                self._act("scope IAM user %s to %s/%s" % (user, target["bucket"], host_prefix(target, host)),
                          iam.put_user_policy, UserName=user, PolicyName="restorable-prefix", PolicyDocument=policy)
            if stored and stored.get("AWS_ACCESS_KEY_ID") in existing_keys:
                return
            self.result.actions.append(("would " if self.check_mode else "") + "create an access key for IAM user %s" % user)
            if not self.check_mode:
                key = iam.create_access_key(UserName=user)["AccessKey"]
                _write_private_json(credential_path(self.store, target, host), {
                    "AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]})
        except (BotoCoreError, ClientError) as exc:
            raise ProvisioningFailed("restorable_targets.%s: credentials of host %s: %s" % (name, host, exc)) from None

    @staticmethod
    def _user_keys(iam, user: str):
        try:
            return [k["AccessKeyId"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchEntity":
                return None
            raise

    @staticmethod
    def _user_policy(iam, user: str):
        try:
            document = iam.get_user_policy(UserName=user, PolicyName="restorable-prefix")["PolicyDocument"]
        except ClientError:
            return None
        return json.loads(document) if isinstance(document, str) else document


def _iam_user_name(bucket: str, host: str) -> str:
    name = re.sub(r"[^\w+=,.@-]", "-", "restorable-%s-%s" % (bucket, host))
    if len(name) <= 64:
        return name
    return name[:51] + "-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]


def _lifecycle_rule(settings: dict) -> dict:
    rule = {"ID": LIFECYCLE_RULE_ID, "Status": "Enabled", "Filter": {"Prefix": ""}}
    if "noncurrent_days" in settings:
        rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": settings["noncurrent_days"]}
    if "abort_incomplete_upload_days" in settings:
        rule["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": settings["abort_incomplete_upload_days"]}
    return rule


def _lifecycle_settings(rule: dict) -> dict:
    settings = {}
    if "NoncurrentVersionExpiration" in rule:
        settings["noncurrent_days"] = rule["NoncurrentVersionExpiration"]["NoncurrentDays"]
    if "AbortIncompleteMultipartUpload" in rule:
        settings["abort_incomplete_upload_days"] = rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
    return settings


def _write_private_json(path: str, document: dict) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    descriptor = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(document, handle)
    os.replace(path + ".tmp", path)
