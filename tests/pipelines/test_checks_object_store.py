"""The asset checks audit a lake in a bucket as they audit a local one, and asset
metadata names its URL (real S3 server on loopback: ``tests/fakes/s3.py``)."""

from __future__ import annotations

from dccd_core.domain import DatasetKey
from dccd_core.storage import Store
from dccd_pipelines.checks import audit_dataset
from dccd_pipelines.io_manager import dataset_path
from tests.core.storage.helpers import ns, trades
from tests.fakes.s3 import running_s3_server

KEY = DatasetKey.of("binance", "BTC/USDT", "trades")


def test_checks_read_the_period_files_from_the_bucket() -> None:
    with running_s3_server() as s3:
        root = f"s3://{s3.new_bucket()}/lake"
        store = Store(root, object_store=s3.options())
        store.write(KEY, trades(["1", "2", "3"], [ns("2024-03-01T01:00") + i for i in range(3)]))
        store.record_coverage(KEY, ns("2024-03-01"), ns("2024-03-02"))  # read from the bucket
        outcomes = audit_dataset(str(store.root), KEY, ns("2024-03-01"), ns("2024-03-02"))
        # the asset metadata's path is the dataset's URL, not a local path
        assert str(dataset_path(root, KEY)) == f"{root}/trades/exchange=binance/symbol=BTC-USDT"
    assert outcomes and all(o.passed for o in outcomes.values())
    assert outcomes["no_duplicates"].rows_checked == 3
