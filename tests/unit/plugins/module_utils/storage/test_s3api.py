# -*- coding: utf-8 -*-
# Private to restorable.backup: unit tests of the standard library S3 client (no server: the
# requests against a real S3 API run in tests/system/tape and tests/system/cdp_pg, on moto).
from __future__ import annotations

import time

from ansible_collections.restorable.backup.plugins.module_utils.storage import s3api


def test_the_sigv4_signature_is_the_one_aws_documents():
    # "Example: GET Object" of the AWS Signature Version 4 documentation for S3.
    credentials = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
    headers = s3api.sign("GET", "/test.txt", {}, {"host": "examplebucket.s3.amazonaws.com", "range": "bytes=0-9"},
                         s3api.EMPTY_SHA256, credentials, "us-east-1", time.strptime("20130524T000000Z", "%Y%m%dT%H%M%SZ"))
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")


def test_a_listing_page_and_an_error_document_are_read():
    page = (b'<?xml version="1.0"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b"<Contents><Key>p/000000010000000000000001</Key><Size>16</Size></Contents><Contents>"
            b"<Key>p/00000002.history</Key><StorageClass>DEEP_ARCHIVE</StorageClass></Contents>"
            b"<IsTruncated>true</IsTruncated><NextContinuationToken>tok==</NextContinuationToken></ListBucketResult>")
    assert s3api.parse_listing(page) == ([
        {"key": "p/000000010000000000000001", "size": 16, "storage_class": "STANDARD"},
        {"key": "p/00000002.history", "size": 0, "storage_class": "DEEP_ARCHIVE"}], {"continuation-token": "tok=="})
    assert s3api.error_code(b"<Error><Code>NoSuchBucket</Code><Message>gone</Message></Error>") == "NoSuchBucket: gone"


def test_a_version_listing_page_leaves_delete_markers_out_and_names_the_next_page():
    page = (b'<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>true</IsTruncated>'
            b"<NextKeyMarker>t/A2</NextKeyMarker><NextVersionIdMarker>v9</NextVersionIdMarker>"
            b"<Version><Key>t/A1</Key><VersionId>v1</VersionId><IsLatest>true</IsLatest><Size>5</Size></Version>"
            b"<DeleteMarker><Key>t/A2</Key><VersionId>v8</VersionId><IsLatest>true</IsLatest></DeleteMarker>"
            b"</ListVersionsResult>")
    assert s3api.parse_listing(page) == ([{"key": "t/A1", "size": 5, "storage_class": "STANDARD",
                                           "version_id": "v1", "latest": True}],
                                         {"key-marker": "t/A2", "version-id-marker": "v9"})


def test_objects_are_addressed_path_style_unless_on_aws():
    local = s3api.S3Client("http://127.0.0.1:9000", "tapes", "us-east-1", "/env")
    assert local.host == "127.0.0.1:9000" and local.path("vtl/tapes/DA0001") == "/tapes/vtl/tapes/DA0001"
    aws = s3api.S3Client("https://s3.eu-central-1.amazonaws.com", "tapes", "eu-central-1", "/env")
    assert aws.host == "tapes.s3.eu-central-1.amazonaws.com" and aws.path("vtl/tapes/DA0001") == "/vtl/tapes/DA0001"


def test_retention_and_restore_requests_carry_the_documented_bodies():
    assert s3api.retention_document("COMPLIANCE", "2026-12-04T18:00:00.000Z") == (
        b'<Retention xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Mode>COMPLIANCE</Mode>'
        b"<RetainUntilDate>2026-12-04T18:00:00.000Z</RetainUntilDate></Retention>")
    assert b"<Days>1</Days>" in s3api.restore_document(1, "Bulk")
    # base64 of the MD5 of nothing (d41d8cd98f00b204e9800998ecf8427e)
    assert s3api.content_md5(b"") == "1B2M2Y8AsgTpgAmY7PhCfg=="
