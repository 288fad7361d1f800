"""Mirrors outputs to an S3-compatible bucket (S3, MinIO): each job's PNGs and its record, via boto3.

Credentials come from the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN,
or a profile) and never appear in a message: errors are masked. Layout under s3://bucket/prefix:
the PNGs under their local names, one JSON object per job at records/<job_id>.json (race-free with
many writers), and a jobs.log snapshot written by `sync`. The local folder stays the source of truth.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlsplit

from sdxl_nb import settings
from sdxl_nb.errors import GenerationError, InputError, one_line
from sdxl_nb.record.joblog import JOBS_LOG, encode_record, read_records
from sdxl_nb.record.secrets import mask, without_credentials
from sdxl_nb.record.store import sha256_bytes

RECORDS = "records"


class MirrorError(GenerationError):
    """The bucket could not be reached or written; the local outputs are unaffected."""


def parse_s3_url(url: str) -> tuple[str, str]:
    """s3://bucket/some/prefix -> ("bucket", "some/prefix")."""
    parts = urlsplit(url or "")
    if parts.scheme != "s3" or not parts.netloc or parts.username or parts.password:
        raise InputError(f"S3 URL {without_credentials(url)!r} not understood; accepted: s3://bucket or "
                         "s3://bucket/prefix (credentials go in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)")
    return parts.netloc, parts.path.strip("/")


class S3Mirror:
    """Copies jobs to s3://bucket/prefix; `endpoint_url` points at MinIO or another S3-compatible store."""

    def __init__(self, url: str, *, endpoint_url: str | None = None, region: str | None = None, client=None):
        self.bucket, self.prefix = parse_s3_url(url)
        self.endpoint_url = endpoint_url or settings.s3_endpoint()
        self.region = region
        self._client = client

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def describe(self) -> str:
        where = f" at {without_credentials(self.endpoint_url)}" if self.endpoint_url else ""
        return f"{self.url}{where}"

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            # Path-style addressing: what MinIO and most self-hosted stores expect.
            config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60,
                            s3={"addressing_style": "path"} if self.endpoint_url else None)
            self._client = boto3.session.Session().client("s3", endpoint_url=self.endpoint_url,
                                                          region_name=self.region, config=config)
        return self._client

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _call(self, what: str, function, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return function(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            detail = f"{error.get('Code', 'error')}: {error.get('Message') or 'no message'}"
            raise MirrorError(mask(f"S3 mirror {self.describe()}: {what} failed ({detail})")) from None
        except (BotoCoreError, OSError) as exc:
            raise MirrorError(mask(f"S3 mirror {self.describe()}: {what} failed ({one_line(exc)})")) from None

    def _put(self, name: str, data: bytes, content_type: str) -> None:
        self._call(f"upload of {name}", self.client.put_object, Bucket=self.bucket, Key=self.key(name), Body=data,
                   ContentType=content_type, Metadata={"sha256": sha256_bytes(data)})

    def check(self) -> None:
        """Fail with one line when the bucket cannot be reached (wrong endpoint, bucket, credentials)."""
        self._call("access to the bucket", self.client.head_bucket, Bucket=self.bucket)

    def mirror_job(self, folder: str | os.PathLike, record: dict) -> list[str]:
        """Upload a recorded job's PNGs, then its record; return the keys written."""
        folder, keys = Path(folder), []
        for image in record.get("images", []):
            try:
                data = (folder / image["path"]).read_bytes()
            except OSError as exc:
                raise MirrorError(f"S3 mirror {self.describe()}: cannot read {image['path']} ({exc.strerror})") from None
            self._put(image["path"], data, "image/png")
            keys.append(self.key(image["path"]))
        name = f"{RECORDS}/{record['job_id']}.json"
        self._put(name, encode_record(record), "application/json")
        return keys + [self.key(name)]

    def existing_keys(self) -> set[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        listing = self._call("listing", lambda: [obj["Key"] for page in paginator.paginate(
            Bucket=self.bucket, Prefix=self.key("")) for obj in page.get("Contents", [])])
        return set(listing)

    def sync(self, folder: str | os.PathLike) -> tuple[int, int]:
        """Copy whatever of a folder's jobs.log is not in the bucket yet, then a jobs.log snapshot.

        Returns (files uploaded, files already there). Images missing locally are skipped.
        """
        folder = Path(folder)
        present, uploaded, already = self.existing_keys(), 0, 0
        for record in read_records(folder / JOBS_LOG):
            if "job_id" not in record:
                continue
            for image in record.get("images", []):
                if self.key(image["path"]) in present:
                    already += 1
                elif (folder / image["path"]).is_file():
                    self._put(image["path"], (folder / image["path"]).read_bytes(), "image/png")
                    uploaded += 1
            name = f"{RECORDS}/{record['job_id']}.json"
            if self.key(name) in present:
                already += 1
            else:
                self._put(name, encode_record(record), "application/json")
                uploaded += 1
        if (folder / JOBS_LOG).is_file():
            self._put(JOBS_LOG, (folder / JOBS_LOG).read_bytes(), "application/x-ndjson")
        return uploaded, already

    def records(self) -> list[dict]:
        """Every mirrored job record, oldest first."""
        records = []
        for key in sorted(self.existing_keys()):
            if key.startswith(self.key(RECORDS + "/")) and key.endswith(".json"):
                body = self._call(f"download of {key}", self.client.get_object, Bucket=self.bucket, Key=key)["Body"]
                records.append(json.loads(body.read()))
        return sorted(records, key=lambda r: r.get("started_at") or "")

    def read(self, name: str) -> bytes:
        return self._call(f"download of {name}", self.client.get_object, Bucket=self.bucket,
                          Key=self.key(name))["Body"].read()


def mirror_from_env() -> S3Mirror | None:
    """The mirror SDXL_NB_S3_URL (and SDXL_NB_S3_ENDPOINT) configure, or None."""
    url = settings.s3_url()
    return S3Mirror(url) if url else None
