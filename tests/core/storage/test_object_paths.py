"""Object-store paths without a server: the lake layout in a bucket is the local layout
under the prefix, derived paths stay in their bucket, a bucket path is never opened as a
local file, and configuration comes from the catalog over the AWS variables."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dccd_core.domain import ConfigError, DatasetKey, to_ns
from dccd_core.storage.fs import lake_path
from dccd_core.storage.layout import coverage_path, lock_path, period_of, period_path
from dccd_core.storage.objectstore import ObjectPath, ObjectStoreOptions, object_root

OPTIONS = ObjectStoreOptions(endpoint_url="http://127.0.0.1:1", region="us-east-1")
KEYS = [
    DatasetKey.of("binance", "BTC/USDT", "trades"),
    DatasetKey.of("binance", "BTC/USDT:USDT", "funding"),
    DatasetKey.of("kraken", "ETH/EUR", "ohlc", "1m"),
    DatasetKey.of("okx", "BTC/USDT", "ohlc", "1d"),
    DatasetKey.of("bybit", "SOL/USDT", "book"),
]


@given(
    key=st.sampled_from(KEYS),
    ts=st.integers(min_value=to_ns("2015-01-01"), max_value=to_ns("2035-01-01")),
    prefix=st.lists(st.from_regex(r"[a-z0-9_-]{1,8}", fullmatch=True), max_size=3),
)
def test_the_bucket_layout_is_the_local_layout_under_the_prefix(
    key: DatasetKey, ts: int, prefix: list[str]
) -> None:
    url = "s3://lake-bucket/" + "/".join(prefix) if prefix else "s3://lake-bucket"
    root = object_root(url, OPTIONS)
    local = Path("/local-root")
    period = period_of(key, ts)
    for derive in (
        lambda r: period_path(r, key, period),
        lambda r: coverage_path(r, key),
        lambda r: lock_path(r, key),
    ):
        remote, here = derive(root), derive(local)
        assert isinstance(remote, ObjectPath)
        assert remote.url == url.rstrip("/") + "/" + here.relative_to(local).as_posix()
        # derived paths keep the bucket and its client
        assert (
            type(remote.parent) is type(remote)
            and remote.parent.url == remote.url.rsplit("/", 1)[0]
        )
        assert type(remote.with_name("x.parquet")) is type(remote)


def test_a_bucket_path_is_never_opened_as_a_local_file() -> None:
    path = object_root("s3://lake-bucket/lake", OPTIONS) / "ohlc" / "2024.parquet"
    with pytest.raises(TypeError, match="object-store path"):
        os.fspath(path)
    with pytest.raises(TypeError):
        pl.read_parquet(path)  # a call that bypasses the seam fails, writes nothing
    assert str(path) == "s3://lake-bucket/lake/ohlc/2024.parquet"
    assert lake_path(str(path.parent)) == path.parent  # the URL names the same path
    assert lake_path("relative/root") == Path("relative/root")


@pytest.mark.parametrize("url", ["s3://", "s3:///lake", "s3://bucket/../other", "s3://b/./x"])
def test_a_malformed_bucket_root_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match=r"s3://bucket/prefix|'\.'"):
        object_root(url, OPTIONS)


def test_explicit_options_win_over_the_aws_variables() -> None:
    env = {
        "AWS_ENDPOINT_URL": "https://from-env.example",
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "env-key",
        "AWS_SECRET_ACCESS_KEY": "env-secret",
    }
    merged = ObjectStoreOptions(endpoint_url="http://catalog:9000").with_env(env)
    assert merged.endpoint_url == "http://catalog:9000" and merged.region == "eu-west-1"
    assert merged.access_key_id == "env-key" and "env-secret" not in repr(merged)
    options = merged.storage_options()
    assert options["aws_endpoint_url"] == "http://catalog:9000"
    assert options["aws_allow_http"] == "true"  # an http:// endpoint only
    assert "aws_allow_http" not in ObjectStoreOptions().with_env(env).storage_options()
    with pytest.raises(ConfigError, match="lease_ttl_s"):
        ObjectStoreOptions(lease_ttl_s=0)
