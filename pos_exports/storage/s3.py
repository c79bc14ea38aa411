"""S3 (or any S3-compatible server) storage through dagster-aws's `S3Resource`.

A file is written locally first and uploaded in one `upload_file` call: S3 shows an object only
once its (multipart) upload has completed, so a half-written file never appears at its key. What a
killed run leaves (local scratch folders, multipart uploads never completed) is swept by `sweep_temp`.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pos_exports import config
from pos_exports.core.clock import utc_now
from pos_exports.storage.base import TEMP_MAX_AGE, Storage, sweep_folder, temp_prefix

SCRATCH = "pos-s3"  # local scratch folders: pos-s3.{host}-{pid}-{random}


class S3Storage(Storage):
    def __init__(self, bucket: str, prefix: str, client: object) -> None:
        self.bucket, self.prefix, self.client = bucket, prefix.strip("/"), client
        self.root = f"s3://{bucket}/{self.prefix}".rstrip("/")

    @classmethod
    def from_url(cls, url: str) -> S3Storage:
        """`s3://bucket/prefix`; `AWS_ENDPOINT_URL` points at an S3-compatible server."""
        from dagster_aws.s3 import S3Resource

        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"POS_EXPORTS_STORAGE {url!r} names no bucket (expected s3://bucket/prefix)")
        resource = S3Resource(endpoint_url=config.settings().aws_endpoint_url)
        return cls(bucket, prefix, resource.get_client())

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextlib.contextmanager
    def staged(self, key: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix=temp_prefix(SCRATCH)) as tmp_dir:
            tmp = Path(tmp_dir) / Path(key).name
            tmp.touch()
            yield tmp
            self.client.upload_file(str(tmp), self.bucket, self._key(key))

    def read_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        from botocore.exceptions import ClientError

        with tempfile.TemporaryDirectory(prefix=temp_prefix(SCRATCH)) as tmp_dir:
            path = Path(tmp_dir) / Path(key).name
            try:
                self.client.download_file(self.bucket, self._key(key), str(path))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    raise FileNotFoundError(f"not in storage: {self.uri(key)}") from None
                raise
            yield path

    def _head(self, key: str) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise FileNotFoundError(self.uri(key))
        return int(head["ContentLength"])

    def sizes(self, prefix: str) -> dict[str, int]:
        full = self._key(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        out: dict[str, int] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
            out.update((obj["Key"][strip:], int(obj["Size"])) for obj in page.get("Contents", []))
        return out

    def sweep_temp(self, prefix: str) -> list[str]:
        """This host's scratch folders of dead runs, and multipart uploads under `prefix` never completed."""
        swept = [str(p) for p in sweep_folder(Path(tempfile.gettempdir()), f"{SCRATCH}.*")]
        now = utc_now()
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix)
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                if now - upload["Initiated"] > TEMP_MAX_AGE:  # an upload's writer is unknown: age only
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    swept.append(self.uri(upload["Key"][len(self.prefix) + 1 if self.prefix else 0 :]))
        return swept

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def table_options(self) -> dict[str, str]:
        """deltalake's S3 options from the same settings as this storage's client (endpoint, region and
        credentials). Commits use S3's conditional put (no lock table, never an unsafe rename)."""
        import boto3

        options = {"AWS_REGION": self.client.meta.region_name or "us-east-1", "AWS_S3_ALLOW_UNSAFE_RENAME": "false"}
        if endpoint := config.settings().aws_endpoint_url:
            options["AWS_ENDPOINT_URL"] = endpoint
            if endpoint.startswith("http://"):
                options["AWS_ALLOW_HTTP"] = "true"
        credentials = boto3.Session().get_credentials()
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            options["AWS_ACCESS_KEY_ID"], options["AWS_SECRET_ACCESS_KEY"] = frozen.access_key, frozen.secret_key
            if frozen.token:
                options["AWS_SESSION_TOKEN"] = frozen.token
        return options

    def presigned_url(self, key: str, expires_seconds: int = 7 * 24 * 3600) -> str:
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=expires_seconds
        )
