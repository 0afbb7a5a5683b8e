"""Store grants (genesys.store.grant) against real loopback S3 servers: moto and s3rver.

A grant is issued by an S3Store (the operator's credentials) and used by a GrantStore (plain
HTTP, no credential). moto accepts any signature and never expires a URL, so every refusal is
checked against s3rver, which expires URLs and verifies SigV2 signatures; its SigV4 signature
check is unimplemented (it accepts any SigV4 signature), so the tampering test signs with SigV2.
Where s3rver is not installed those tests skip with the reason (tests/store/conftest.py).
"""

from __future__ import annotations

import secrets
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from genesys.store import ConditionalWriteUnsupportedError, StoreError, open_store
from genesys.store.base import LocalStore, S3Store, Store
from genesys.store.grant import (
    GRANT_VARIABLE,
    MAX_LIFETIME_SECONDS,
    TRAINER_KEYS,
    GrantedObject,
    GrantStore,
    StoreGrant,
    grant_env,
    grant_lifetime,
    granted_puts,
    issue_grant,
    load_grant,
    training_grant,
)

if TYPE_CHECKING:
    from conftest import Server

RUN = "runs/team/alpha"
DESIGN = f"{RUN}/designs/d0001/design.json"
CONFIG = f"{RUN}/config/0123abcd.json"
OUT = f"{RUN}/designs/d0001/verifications/nano"
DATA = {
    "data/byte/meta.json": '{"vocab_size": 256}',
    "data/byte/train-00000.bin": "train tokens",
    "data/byte/val-00000.bin": "val tokens",
    "data/byte/tasks/genesys_cloze.jsonl": "{}\n",
}
DECOYS = {  # beside what is granted: never listed, never reachable
    "data/byte-2/meta.json": "sibling data",
    f"{RUN}/spec.json": "the run's identity",
    f"{RUN}/designs/d0002/design.json": "another design",
}
SERVERS = [
    pytest.param("moto", id="moto", marks=pytest.mark.integration),
    pytest.param("s3rver", id="s3rver", marks=pytest.mark.integration),
]
HONOURS_CONDITIONAL_WRITES = {"moto": True, "s3rver": False}  # as the conformance cases say


def seeded(store: S3Store) -> S3Store:
    """``store`` holding a run's design and config, prepared data, and decoys."""
    for key, text in {DESIGN: "{}", CONFIG: "{}", **DATA, **DECOYS}.items():
        store.put_text(key, text)
    return store


def uri(store: Store, key: str = "") -> str:
    return f"{store.uri}/{key}".rstrip("/")


def grant_for(
    store: S3Store, *, expires_in: int = 600, signer: S3Store | None = None
) -> StoreGrant:
    """A training job's grant over ``store``'s run, signed by ``signer`` (default: the store)."""
    return issue_grant(
        signer or store,
        objects=[uri(store, DESIGN), uri(store, CONFIG)],
        folders=[uri(store, "data/byte")],
        writable=uri(store, OUT),
        expires_in=expires_in,
    )


@pytest.fixture
def s3_store(
    request: pytest.FixtureRequest, fresh_s3_store: Callable[[Server], Store]
) -> tuple[str, S3Store]:
    """(server name, a seeded store on a new bucket of that server)."""
    name: str = request.param
    store = fresh_s3_store(request.getfixturevalue(f"{name}_server"))
    assert isinstance(store, S3Store)
    return name, seeded(store)


@pytest.fixture
def s3rver_store(s3rver_server: Server, fresh_s3_store: Callable[[Server], Store]) -> S3Store:
    store = fresh_s3_store(s3rver_server)
    assert isinstance(store, S3Store)
    return seeded(store)


@pytest.fixture
def no_requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail any HTTP request a GrantStore would send; the list of attempted URLs."""
    attempted: list[str] = []

    def refuse(request: Any, *args: Any, **kwargs: Any) -> Any:
        attempted.append(getattr(request, "full_url", str(request)))
        raise AssertionError(f"a request was sent: {attempted[-1]}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return attempted


# ---------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("s3_store", SERVERS, indirect=True)
def test_a_grant_round_trips_its_output_keys_and_reads_its_inputs(
    s3_store: tuple[str, S3Store],
) -> None:
    name, store = s3_store
    grant = grant_for(store)
    out = GrantStore(grant, uri(store, OUT))
    assert out.uri == uri(store, OUT)
    assert not out.exists("log.jsonl")
    with pytest.raises(KeyError):
        out.get_bytes("checkpoint.pt")
    out.put_text("log.jsonl", "line\n")
    assert out.exists("log.jsonl")
    assert out.get_text("log.jsonl") == "line\n"
    assert store.get_text(f"{OUT}/log.jsonl") == "line\n"  # the real object, seen by the issuer
    out.put_bytes("model.pt", b"\x00weights\xff")
    assert store.get_bytes(f"{OUT}/model.pt") == b"\x00weights\xff"

    assert grant.conditional_writes is HONOURS_CONDITIONAL_WRITES[name]
    if grant.conditional_writes:
        assert out.create_text("result.json", "first") is True
        assert out.create_text("result.json", "second") is False
        assert out.get_text("result.json") == "first"
    else:  # s3rver ignores If-None-Match: refused clearly, as the S3Store does
        with pytest.raises(ConditionalWriteUnsupportedError, match="If-None-Match"):
            out.create_text("result.json", "first")

    design = GrantStore(grant, uri(store, DESIGN).rsplit("/", 1)[0])
    assert design.get_text("design.json") == "{}"
    assert design.exists("design.json")
    config = GrantStore(grant, uri(store, "")).child(CONFIG.rsplit("/", 1)[0])
    assert config.get_bytes(CONFIG.rsplit("/", 1)[1]) == b"{}"


@pytest.mark.parametrize("s3_store", SERVERS, indirect=True)
def test_a_granted_data_prefix_lists_and_downloads_like_the_store(
    s3_store: tuple[str, S3Store], tmp_path: Path
) -> None:
    _, store = s3_store
    grant = grant_for(store)
    data = GrantStore(grant, uri(store, "data/byte"))
    assert (
        list(data.list())
        == list(store.child("data/byte").list())
        == sorted(key.removeprefix("data/byte/") for key in DATA)
    )
    assert list(data.list("tasks")) == ["tasks/genesys_cloze.jsonl"]
    assert list(data.child("tasks").list()) == ["genesys_cloze.jsonl"]
    data.get_file("train-00000.bin", tmp_path / "train.bin")
    assert (tmp_path / "train.bin").read_text() == "train tokens"
    assert list(GrantStore(grant, uri(store, "data")).list()) == sorted(
        key.removeprefix("data/") for key in DATA
    )  # never data/byte-2: it was not granted

    out = GrantStore(grant, uri(store, OUT))
    assert list(out.list()) == []  # writable keys are listed only once they exist
    out.put_text("config.json", "{}")
    assert list(out.list()) == ["config.json"]


def test_a_grant_covers_exactly_the_inputs_and_the_trainer_keys(
    moto_server: Server, fresh_s3_store: Callable[[Server], Store]
) -> None:
    store = fresh_s3_store(moto_server)
    assert isinstance(store, S3Store)
    grant = training_grant(
        seeded(store),
        design=uri(store, DESIGN),
        config=uri(store, CONFIG),
        data=uri(store, "data/byte"),
        out=uri(store, OUT),
        deadline_seconds=600,
    )
    assert grant is not None
    assert set(grant.objects) == {
        uri(store, DESIGN),
        uri(store, CONFIG),
        *(uri(store, key) for key in DATA),
        *(uri(store, f"{OUT}/{key}") for key in TRAINER_KEYS),
    }
    assert grant.writable == uri(store, OUT)
    assert granted_puts(grant) == sorted(uri(store, f"{OUT}/{key}") for key in TRAINER_KEYS)
    for urls in grant.objects.values():
        for url in (urls.get, urls.head, urls.put):
            assert url is None or "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url  # SigV4
    assert load_grant(grant.to_json()) == grant
    left = store.client.list_objects_v2(Bucket=store.bucket, Prefix=f"{OUT}/")
    assert left.get("KeyCount", 0) == 0  # the If-None-Match probe cleaned up after itself


# ------------------------------------------------------------------------------ refusals


@pytest.mark.integration
def test_a_key_outside_the_grant_is_refused_without_a_request(
    moto_server: Server, fresh_s3_store: Callable[[Server], Store], no_requests: list[str]
) -> None:
    store = fresh_s3_store(moto_server)
    assert isinstance(store, S3Store)
    grant = grant_for(seeded(store))  # issuing talks to the server through boto3, not urllib
    root = GrantStore(grant, uri(store))
    out = root.child(OUT)
    refusals: list[Callable[[], object]] = [
        lambda: root.get_bytes(f"{RUN}/spec.json"),
        lambda: root.exists(f"{RUN}/designs/d0002/design.json"),
        lambda: root.put_text(DESIGN, "a rewritten design"),  # readable, not writable
        lambda: root.put_text(f"{RUN}/escape.json", "{}"),
        lambda: out.put_text("attempts/0.json", "{}"),  # under the prefix, not a trainer key
        lambda: out.create_text("gpu-usage/job.json", "{}"),
        lambda: out.delete("result.json"),
        lambda: out.delete_prefix("attempts"),
        lambda: root.delete_prefix(RUN),
        lambda: out.list_versions(),
    ]
    for refusal in refusals:
        with pytest.raises(StoreError, match="the store grant does not cover it"):
            refusal()
    with pytest.raises(StoreError, match=r"s3://.*/runs/team/alpha/spec\.json"):
        root.get_text(f"{RUN}/spec.json")
    assert no_requests == []


@pytest.mark.integration
def test_a_url_tampered_to_another_key_is_refused_by_s3rver(
    s3rver_server: Server, s3rver_store: S3Store
) -> None:
    import boto3
    from botocore.config import Config

    sigv2 = boto3.client(
        "s3",
        endpoint_url=s3rver_server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=s3rver_server.access_key,
        aws_secret_access_key=s3rver_server.secret_key,
        config=Config(signature_version="s3", s3={"addressing_style": "path"}),
    )
    store = s3rver_store  # a read-only grant: signing sends no request (s3rver refuses
    # SigV2 in headers, which listing or the If-None-Match probe would send)
    grant = issue_grant(
        S3Store(store.bucket, client=sigv2), objects=[uri(store, DESIGN)], expires_in=600
    )
    assert "Signature=" in grant.objects[uri(store, DESIGN)].get  # SigV2: s3rver checks it
    folder = uri(store, DESIGN).rsplit("/", 1)[0]
    assert GrantStore(grant, folder).get_text("design.json") == "{}"  # the genuine URL works
    tampered = {
        target: GrantedObject(
            get=urls.get.replace(DESIGN, f"{RUN}/spec.json"),
            head=urls.head.replace(DESIGN, f"{RUN}/spec.json"),
        )
        for target, urls in grant.objects.items()
        if target == uri(store, DESIGN)
    }
    forged = grant.model_copy(update={"objects": {**grant.objects, **tampered}})
    with pytest.raises(StoreError, match=r"refused \(expired\?\).*403 SignatureDoesNotMatch"):
        GrantStore(forged, folder).get_text("design.json")
    with pytest.raises(StoreError, match=r"refused \(expired\?\)"):
        GrantStore(forged, folder).exists("design.json")


@pytest.mark.integration
def test_an_expired_grant_is_refused_by_s3rver(s3rver_store: S3Store) -> None:
    store = s3rver_store
    grant = grant_for(store, expires_in=1)
    time.sleep(2)
    out = GrantStore(grant, uri(store, OUT))
    with pytest.raises(StoreError, match=r"refused \(expired\?\).*403 AccessDenied: Request has"):
        out.put_text("log.jsonl", "too late")
    with pytest.raises(StoreError, match=r"refused \(expired\?\)"):
        GrantStore(grant, uri(store, "data/byte")).get_text("meta.json")
    assert not store.exists(f"{OUT}/log.jsonl")


# ------------------------------------------------------------------- transport and limits


@pytest.mark.integration
def test_open_store_with_a_grant_in_the_environment_needs_no_credential(
    moto_server: Server,
    fresh_s3_store: Callable[[Server], Store],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = fresh_s3_store(moto_server)
    assert isinstance(store, S3Store)
    grant = grant_for(seeded(store))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "GENESYS_S3_ENDPOINT"):
        monkeypatch.delenv(name)
    monkeypatch.setenv(GRANT_VARIABLE, grant_env(grant)[GRANT_VARIABLE])
    out = open_store(uri(store, OUT))
    assert isinstance(out, GrantStore)
    out.put_text("result.json", "{}")
    assert open_store(uri(store, "data/byte")).get_text("meta.json") == DATA["data/byte/meta.json"]
    assert isinstance(open_store(tmp_path / "local"), LocalStore)  # paths stay local
    monkeypatch.delenv(GRANT_VARIABLE)
    monkeypatch.setenv("GENESYS_S3_ENDPOINT", moto_server.endpoint)
    assert isinstance(open_store(uri(store, OUT)), S3Store)  # without a grant: as before


@pytest.mark.integration
def test_the_grant_holds_no_secret(
    moto_server: Server, fresh_s3_store: Callable[[Server], Store]
) -> None:
    import boto3

    store = seeded(fresh_s3_store(moto_server))  # type: ignore[arg-type]
    secret = f"secret-{secrets.token_hex(16)}"
    access_key = f"AKIA{uuid.uuid4().hex[:16].upper()}"
    client = boto3.client(
        "s3",
        endpoint_url=moto_server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
    )
    text = grant_env(grant_for(store, signer=S3Store(store.bucket, client=client)))[GRANT_VARIABLE]
    assert secret not in text
    assert access_key in text  # a presigned URL names the key id; the secret stays with us


def test_a_grant_lives_its_deadline_plus_a_margin_and_at_most_seven_days() -> None:
    assert grant_lifetime(600) == 600 + 3600
    assert grant_lifetime(30 * 24 * 3600) == MAX_LIFETIME_SECONDS == 7 * 24 * 3600


def test_a_grant_refuses_put_urls_outside_its_writable_prefix() -> None:
    urls = GrantedObject(get="http://s3/b/k?g", head="http://s3/b/k?h", put="http://s3/b/k?p")
    with pytest.raises(ValueError, match="not under the writable prefix"):
        StoreGrant(
            expires="2030-01-01T00:00:00Z",
            writable="s3://b/runs/r/out",
            objects={"s3://b/runs/r/out-2/k": urls},
        )
    with pytest.raises(StoreError, match=GRANT_VARIABLE):
        load_grant('{"format": "genesys.store-grant/v1", "objects": {}}')


def test_a_grant_too_large_for_the_environment_is_refused_at_issue() -> None:
    url = "http://s3/b/k?" + "x" * 1000
    objects = {
        f"s3://b/data/shard-{n:05d}.bin": GrantedObject(get=url, head=url) for n in range(200)
    }
    grant = StoreGrant(expires="2030-01-01T00:00:00Z", objects=objects)
    with pytest.raises(StoreError, match="fewer, larger shards"):
        grant_env(grant)
