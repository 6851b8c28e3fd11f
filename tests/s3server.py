"""A local S3-compatible server (moto in server mode on 127.0.0.1, a free port) for tests: never the network.

Shared by the object-storage tests and the Spark engine's fixture, so both start it, scrub a developer's cloud
variables and restore the environment the same way."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def moto_s3(bucket: str, extra_env: dict[str, str]) -> Iterator[tuple[dict[str, str], object]]:
    """Yields the environment the SDKs read (also set in ``os.environ``) and an s3fs filesystem with ``bucket``."""
    import moto.server
    import s3fs

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = moto.server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret",
           "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true", **extra_env}
    # every cloud variable a developer's shell might carry, so the tests see only what they set
    cloud = [k for k in os.environ if k.startswith(("AWS_", "GOOGLE_", "AZURE_"))]
    saved = {k: os.environ.get(k) for k in [*env, *cloud]}
    for k in cloud:
        os.environ.pop(k, None)
    os.environ.update(env)
    fs = s3fs.S3FileSystem(use_listings_cache=False)
    fs.mkdir(bucket)
    try:
        yield env, fs
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()
