"""`sdxl-nb mirror`: copy an output folder's jobs (PNGs, records, a jobs.log snapshot) to an S3-compatible bucket."""

from __future__ import annotations

import argparse

NAME = "mirror"
HELP = "copy what is missing of an output folder to S3/MinIO (credentials from the AWS_* environment)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", help="output folder (default: $SDXL_NB_OUTPUT or output_images)")
    parser.add_argument("--s3-url", help="s3://bucket/prefix (default: $SDXL_NB_S3_URL)")
    parser.add_argument("--s3-endpoint", help="S3-compatible endpoint such as http://minio:9000 "
                                              "(default: $SDXL_NB_S3_ENDPOINT, else AWS)")


def run(args) -> int:
    import os

    from sdxl_nb import settings
    from sdxl_nb.cli import EXIT_OK
    from sdxl_nb.cloud.mirror import S3Mirror
    from sdxl_nb.errors import InputError
    from sdxl_nb.jobs.pipeline import default_output_dir
    from sdxl_nb.record.joblog import JOBS_LOG

    url = args.s3_url or settings.s3_url()
    if not url:
        raise InputError(f"no bucket given: pass --s3-url s3://bucket/prefix or set {settings.S3_URL}")
    folder = args.out or default_output_dir()
    if not os.path.isfile(os.path.join(folder, JOBS_LOG)):
        raise InputError(f"no {JOBS_LOG} in {str(folder)!r}: nothing to mirror")
    mirror = S3Mirror(url, endpoint_url=args.s3_endpoint)
    uploaded, already = mirror.sync(folder)
    print(f"mirrored {uploaded} file(s) to {mirror.describe()}; {already} already there; jobs.log snapshot updated")
    return EXIT_OK
