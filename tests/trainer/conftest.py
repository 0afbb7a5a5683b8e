"""Fixtures for trainer tests: prepared data (built-in corpus) and a moto S3 server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from genesys_trainer.data.sources import SourceError, builtin_corpus_dir


@pytest.fixture(scope="session")
def builtin_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in corpus prepared with the byte tokenizer (10% synthetic)."""
    try:
        builtin_corpus_dir()
    except SourceError as exc:
        pytest.skip(f"built-in corpus not installed: {exc}")
    from genesys_trainer.data.prepare import prepare

    out = tmp_path_factory.mktemp("data") / "byte"
    prepare(
        source="builtin", tokenizer="byte", out=str(out), synthetic_fraction=0.1, progress=False
    )
    return out


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 HTTP endpoint on loopback (moto's threaded server), with a bucket."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    import boto3

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    client.create_bucket(Bucket="genesys-test")
    yield endpoint
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for boto3 clients in this process and in children."""
    env = {
        "GENESYS_S3_ENDPOINT": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
