"""The generic pieces on their own: header and unit detection per file, bounded blocks,
checksum files, implausible rows refused as ArchiveUnavailable."""

from __future__ import annotations

import gzip
import io
import zipfile
from contextlib import ExitStack
from pathlib import Path

import polars as pl
import pytest

from dccd_core.domain import NS_PER_DAY, ArchiveGranularity, DataType, to_ns
from dccd_core.sources.archives.base import ArchiveFile, ArchiveUnavailable
from dccd_core.sources.archives.checks import check_archive_rows, ns_per_unit
from dccd_core.sources.archives.decode import (
    CsvLayout,
    iter_csv_frames,
    iter_csv_frames_backward,
    open_member,
)
from dccd_core.sources.archives.fetch import parse_checksum
from dccd_core.sources.archives.inflate import DeflateMember

LAYOUT = CsvLayout(
    names=("t", "price", "qty"),
    dtypes={"t": pl.Int64, "price": pl.Float64, "qty": pl.Float64},
    required=("t", "price"),
)
DAY = to_ns("2024-05-10")
FILE = ArchiveFile("X-2024-05-10.zip", "/x", None, DAY, DAY + NS_PER_DAY, ArchiveGranularity.DAILY)


def _frames(text: bytes, layout: CsvLayout = LAYOUT, block: int = 1 << 20) -> list[pl.DataFrame]:
    return list(iter_csv_frames(io.BytesIO(text), "x.csv", layout, block_bytes=block))


def test_header_row_detected_and_skipped() -> None:
    body = b"1715299200000,1.5,2\n1715299200001,1.25,3\n"
    plain = pl.concat(_frames(body))
    headed = pl.concat(_frames(b"open_time,price,quantity\n" + body))
    assert plain.equals(headed)
    assert plain.get_column("t").to_list() == [1715299200000, 1715299200001]


def test_by_header_names_columns_after_the_file() -> None:
    layout = CsvLayout(names=(), dtypes={"price": pl.Float64}, required=("price",), by_header=True)
    (frame,) = _frames(b"side,price,extra\nBuy,1.5,z\n", layout)
    assert frame.columns == ["side", "price", "extra"]
    with pytest.raises(ArchiveUnavailable, match="no header row"):
        _frames(b"Buy,1.5,2\n", layout)
    with pytest.raises(ArchiveUnavailable, match="price missing"):
        _frames(b"side,cost\nBuy,1.5\n", layout)


def test_blocks_are_bounded_and_cut_at_line_ends() -> None:
    lines = [f"{1715299200000 + i},{i}.5,1" for i in range(5000)]
    frames = _frames(("\n".join(lines)).encode(), block=1024)  # no final newline
    assert max(f.height for f in frames) <= 1024 // 20 + 1
    assert pl.concat(frames).get_column("t").to_list() == [1715299200000 + i for i in range(5000)]


def test_garbage_in_a_row_is_unreadable() -> None:
    with pytest.raises(ArchiveUnavailable, match="unreadable CSV"):
        _frames(b"1715299200000,1.5,2\n1715299200001,abc,3\n")


def test_zip_and_gzip_members_and_their_corruption(tmp_path: Path) -> None:
    body = b"".join(f"{1715299200000 + i},{i}.5,1\n".encode() for i in range(20000))
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.csv", body)
    for name, data in (("x.zip", zipped.getvalue()), ("x.csv.gz", gzip.compress(body))):
        path = tmp_path / name
        path.write_bytes(data)
        with ExitStack() as stack:
            rows = pl.concat(_frames(open_member(path, name, stack).read()))
        assert rows.height == 20000
        path.write_bytes(data[: len(data) * 2 // 3])
        with pytest.raises(ArchiveUnavailable, match="truncated or corrupt"), ExitStack() as stack:
            stream = open_member(path, name, stack)
            list(iter_csv_frames(stream, name, LAYOUT, block_bytes=4096))


def test_timestamp_units_by_magnitude() -> None:
    ms = 1_715_299_200_123
    assert ns_per_unit(ms, "f") == 1_000_000
    assert ns_per_unit(ms * 1000, "f") == 1_000
    assert ns_per_unit(ms * 1_000_000, "f") == 1
    assert ns_per_unit(ms // 1000, "f") == 1_000_000_000
    with pytest.raises(ArchiveUnavailable, match="no known unit"):
        ns_per_unit(12345, "f")


def _trades(**values: list[object]) -> pl.DataFrame:
    base: dict[str, list[object]] = {
        "ts": [DAY + 1], "trade_id": ["1"], "price": [1.0], "amount": [1.0], "side": ["buy"]
    }  # fmt: skip
    return pl.DataFrame({**base, **values})


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"ts": [DAY - 1]}, "outside the file's period"),
        ({"ts": [DAY + NS_PER_DAY]}, "outside the file's period"),
        ({"price": [0.0]}, "price that is not a positive number"),
        ({"price": [float("inf")]}, "price that is not a positive number"),
        ({"amount": [-1.0]}, "amount that is not a number >= 0"),
        ({"side": ["long"]}, "side not in"),
    ],
)
def test_implausible_rows_make_the_file_unavailable(
    values: dict[str, list[object]], reason: str
) -> None:
    check_archive_rows(_trades(), DataType.TRADES, FILE)
    with pytest.raises(ArchiveUnavailable, match="implausible") as caught:
        check_archive_rows(_trades(**values), DataType.TRADES, FILE)
    assert reason in str(caught.value)


def test_checksum_files() -> None:
    digest = "ab" * 32
    assert parse_checksum(f"{digest.upper()}  X.zip\n", "X.zip") == digest
    assert parse_checksum(digest, "X.zip") == digest
    with pytest.raises(ArchiveUnavailable, match="unreadable checksum"):
        parse_checksum("<html>not found</html>", "X.zip")
    with pytest.raises(ArchiveUnavailable, match="names another file"):
        parse_checksum(f"{digest}  Y.zip", "X.zip")


@pytest.mark.parametrize("header", [b"", b"t,price,qty\n"])
@pytest.mark.parametrize("block", [64, 1000, 1 << 20])
def test_backward_reading_yields_every_row_reversed(header: bytes, block: int) -> None:
    lines = [f"{1715299200000 + i},{i}.5,{i % 7}" for i in range(3000)]
    body = header + "\n".join(lines).encode() + b"\n"
    frames = list(iter_csv_frames_backward(io.BytesIO(body), "x.csv", LAYOUT, block_bytes=block))
    rows = pl.concat(frames)
    assert rows.get_column("t").to_list() == [1715299200000 + i for i in reversed(range(3000))]
    assert max(f.height for f in frames) <= block // 20 + 1  # a block and one carried line


def test_a_zip_corrupted_inside_is_unavailable(tmp_path: Path) -> None:
    """A flipped byte inside the deflate stream: a zlib or CRC error (or garbage text),
    never rows."""
    body = b"".join(f"{1715299200000 + i},{i}.5,1\n".encode() for i in range(50000))
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.csv", body)
    data = bytearray(zipped.getvalue())
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "x.zip"
    path.write_bytes(bytes(data))
    with (
        pytest.raises(ArchiveUnavailable, match=r"truncated or corrupt|unreadable"),
        ExitStack() as stack,
    ):
        stream = open_member(path, "x.zip", stack)
        list(iter_csv_frames(stream, "x.zip", LAYOUT, block_bytes=1 << 16))


def _zip_of(body: bytes, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", method) as archive:
        archive.writestr("x.csv", body)
    return zipped.getvalue()


@pytest.mark.parametrize("step", [1, 4096, 65_537, 1 << 22])
def test_zip_member_through_zlib_ng_reads_what_zipfile_reads(tmp_path: Path, step: int) -> None:
    """The zlib-ng member reader (``inflate``) gives zipfile's bytes, never more than
    asked per read; stored members are still read by zipfile."""
    body = b"".join(f"{1715299200000 + i},{i * 7 % 1000}.5,1\n".encode() for i in range(40000))
    for method in (zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED):
        path = tmp_path / "x.zip"
        path.write_bytes(_zip_of(body, method))
        out = bytearray()
        with ExitStack() as stack:
            stream = open_member(path, "x.zip", stack)
            assert isinstance(stream, DeflateMember) == (method == zipfile.ZIP_DEFLATED)
            while chunk := stream.read(step):
                assert len(chunk) <= step
                out += chunk
        assert bytes(out) == body


def test_zip_member_with_a_wrong_crc_is_corrupt(tmp_path: Path) -> None:
    """The CRC-32 the zip's directory gives is checked at the end of the stream, as
    zipfile checks it: a member whose bytes inflate cleanly but differ is refused."""
    body = b"".join(f"{1715299200000 + i},{i}.5,1\n".encode() for i in range(5000))
    data = bytearray(_zip_of(body))
    crc = zipfile.crc32(body).to_bytes(4, "little")
    at = data.rfind(crc)  # the central directory's copy (zipfile reads that one)
    data[at] ^= 0x01
    path = tmp_path / "x.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveUnavailable, match="bad CRC-32"), ExitStack() as stack:
        stream = open_member(path, "x.zip", stack)
        list(iter_csv_frames(stream, "x.zip", LAYOUT, block_bytes=4096))
