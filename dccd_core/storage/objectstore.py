"""The lake on S3-compatible object storage: ``s3://bucket/prefix`` roots.

Every file of the lake is addressed by a ``pathlib.Path`` (``layout`` derives them).
On an object store the path is an ``ObjectPath``: a ``PosixPath`` whose I/O methods
(``exists``, ``is_file``, ``stat``, ``read_text``, ``write_text``, ``unlink``, ...) talk
to the bucket, so the store's logic (coverage, footers, segments, compaction, recovery)
is the same code on both backends. ``__fspath__`` refuses: anything that would open
such a path as a local file fails loudly instead of writing under ``/bucket/...`` on
the local disk. The few operations a path object cannot carry (listing a folder,
renaming, uploading a freshly written file, reading Parquet with polars or pyarrow)
are the seam in ``fs``.

The client is `obstore <https://developmentseed.org/obstore>`_ (Rust ``object_store``
bindings): one small wheel without botocore, conditional PUTs (``If-None-Match: *`` to
create, ``If-Match: etag`` to replace) for the writer lease (``lease``), multipart
uploads that only appear when complete, and the very configuration keys polars uses
for ``scan_parquet(..., storage_options=...)`` (polars embeds the same Rust crate), so
one dict configures both. pyarrow's ``S3FileSystem`` has no conditional writes, and
s3fs brings botocore (tens of MB) for what obstore does in one.

Configuration: the standard AWS variables (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_ENDPOINT_URL``, ``AWS_REGION``
or ``AWS_DEFAULT_REGION``), overridden by explicit ``ObjectStoreOptions`` (the
catalog's ``store:`` block). An ``http://`` endpoint (a loopback MinIO or moto) allows
plain HTTP.
"""

from __future__ import annotations

import io
import os
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PosixPath
from typing import Any, ClassVar, NamedTuple

from dccd_core.domain import ConfigError, StoreError

__all__ = [
    "DEFAULT_LEASE_TTL_S",
    "ObjectEntry",
    "ObjectPath",
    "ObjectStoreOptions",
    "is_object_url",
    "object_root",
]

_SCHEME = "s3://"

DEFAULT_LEASE_TTL_S = 30.0
"""How long a writer's lease lives without a heartbeat (renewed every third of it):
how long a killed writer blocks the next one."""


def is_object_url(root: object) -> bool:
    """Whether ``root`` names an object-store location (``s3://bucket/prefix``)."""
    return isinstance(root, ObjectPath) or (
        isinstance(root, str) and root.lower().startswith(_SCHEME)
    )


@dataclass(frozen=True, slots=True)
class ObjectStoreOptions:
    """Where and as whom to reach the bucket; ``None`` fields come from the AWS
    environment variables (``from_env``)."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    lease_ttl_s: float = DEFAULT_LEASE_TTL_S

    def __post_init__(self) -> None:
        if not self.lease_ttl_s > 0:
            raise ConfigError(f"store lease_ttl_s must be > 0, got {self.lease_ttl_s}")

    def with_env(self, env: Mapping[str, str] | None = None) -> ObjectStoreOptions:
        """These options with every unset field taken from the AWS variables."""
        env = os.environ if env is None else env
        return replace(
            self,
            endpoint_url=self.endpoint_url
            or env.get("AWS_ENDPOINT_URL_S3")
            or env.get("AWS_ENDPOINT_URL"),
            region=self.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
            access_key_id=self.access_key_id or env.get("AWS_ACCESS_KEY_ID"),
            secret_access_key=self.secret_access_key or env.get("AWS_SECRET_ACCESS_KEY"),
            session_token=self.session_token or env.get("AWS_SESSION_TOKEN"),
        )

    def storage_options(self) -> dict[str, str]:
        """The configuration dict of polars' ``storage_options`` and obstore's ``config``."""
        pairs = {
            "aws_endpoint_url": self.endpoint_url,
            "aws_region": self.region,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "aws_session_token": self.session_token,
        }
        options = {k: v for k, v in pairs.items() if v}
        if (self.endpoint_url or "").lower().startswith("http://"):
            options["aws_allow_http"] = "true"
        return options


class ObjectEntry(NamedTuple):
    """One name in an object-store "folder": a file (object) or a sub-folder (prefix)."""

    name: str
    is_file: bool
    is_dir: bool


class _Bucket:
    """One bucket and its client; the only place that calls obstore."""

    def __init__(self, bucket: str, options: ObjectStoreOptions) -> None:
        try:
            import obstore
            from obstore.store import S3Store
        except ImportError:  # pragma: no cover - depends on the install
            raise ConfigError(
                "an s3:// lake needs the object-store client: pip install 'dccd[s3]'"
            ) from None
        self.name = bucket
        self.options = options
        self.storage_options = options.storage_options()
        self._obs = obstore
        self._store = S3Store(bucket, config=self.storage_options)  # type: ignore[arg-type]

    def url(self, key: str) -> str:
        return f"{_SCHEME}{self.name}/{key}"

    def _fail(self, key: str, what: str, exc: Exception) -> StoreError:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StoreError(
            f"cannot {what} {self.url(key)}: {text}; check the bucket, the endpoint "
            "(AWS_ENDPOINT_URL or store.endpoint_url) and the credentials (AWS_ACCESS_KEY_ID)"
        )

    def call(self, what: str, key: str, op: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``obstore.<op>``: a missing object stays ``FileNotFoundError``, a refused
        condition stays the obstore error (``lease`` handles it), anything else is a
        ``StoreError`` naming the object and the fix."""
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        try:
            return getattr(self._obs, op)(self._store, *args, **kwargs)
        except (FileNotFoundError, AlreadyExistsError, PreconditionError):
            raise
        except Exception as exc:  # obstore raises its own tree and builtins
            raise self._fail(key, what, exc) from exc

    def head(self, key: str) -> Mapping[str, Any]:
        return self.call("read", key, "head", key)  # type: ignore[no-any-return]

    def get_bytes(self, key: str) -> bytes:
        return bytes(self.call("read", key, "get", key).bytes())

    def get_range(self, key: str, start: int, end: int) -> bytes:
        return bytes(self.call("read", key, "get_range", key, start=start, end=end))

    def put(self, key: str, data: bytes | Path, mode: Any = "overwrite") -> str:
        """Upload bytes or a local file (multipart when large: invisible until whole);
        returns the new etag."""
        try:
            result = self.call("write", key, "put", key, data, mode=mode)
        except FileNotFoundError:  # a PUT finds no object missing: the bucket is
            raise StoreError(
                f"cannot write {self.url(key)}: the bucket {self.name!r} does not exist at "
                f"{self.options.endpoint_url or 'the default AWS endpoint'}; create it or "
                "fix store.root / the endpoint (AWS_ENDPOINT_URL or store.endpoint_url)"
            ) from None
        return str(result["e_tag"])

    def copy(self, src: str, dst: str) -> None:
        self.call("copy", src, "copy", src, dst)

    def delete(self, key: str) -> None:
        self.call("delete", key, "delete", key)

    def list_dir(self, key: str) -> list[ObjectEntry]:
        prefix = key.rstrip("/") + "/" if key else ""
        listing = self.call("list", key, "list_with_delimiter", prefix or None)
        entries = [
            ObjectEntry(p.rstrip("/").rsplit("/", 1)[-1], False, True)
            for p in listing["common_prefixes"]
        ]
        entries += [
            ObjectEntry(o["path"].rsplit("/", 1)[-1], True, False) for o in listing["objects"]
        ]
        return entries

    def has_prefix(self, key: str) -> bool:
        prefix = key.rstrip("/") + "/"
        stream = self.call("list", key, "list", prefix, chunk_size=1)
        return any(True for chunk in stream for _ in chunk)


class ObjectPath(PosixPath):
    """A lake path in a bucket: ``/bucket/key`` as a ``PosixPath``, shown as
    ``s3://bucket/key``. Each bucket location gets its own subclass (``object_root``)
    whose class attribute is the client, so every derived path (``/``, ``.parent``,
    ``with_name``) keeps it without per-instance state."""

    _bucket: ClassVar[_Bucket]

    # -- identity -----------------------------------------------------------------

    @property
    def key(self) -> str:
        """The object key (no bucket, no leading slash)."""
        parts = self.parts[2:]  # "/", bucket, ...
        return "/".join(parts)

    @property
    def url(self) -> str:
        """``s3://bucket/key``: what polars, DuckDB and the messages use."""
        return self._bucket.url(self.key)

    @property
    def storage_options(self) -> dict[str, str]:
        """The polars/obstore configuration of this path's bucket."""
        return dict(self._bucket.storage_options)

    @property
    def options(self) -> ObjectStoreOptions:
        return self._bucket.options

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"ObjectPath({self.url!r})"

    def __fspath__(self) -> str:
        raise TypeError(
            f"{self.url} is an object-store path, not a local file (a storage call "
            "bypassed dccd_core.storage.fs)"
        )

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.parts == other.parts

    def __hash__(self) -> int:
        return hash((self._bucket.name, self.parts))

    # -- the local-path methods the store uses, on the bucket ----------------------

    def absolute(self) -> ObjectPath:
        return self

    def resolve(self, strict: bool = False) -> ObjectPath:
        return self

    def expanduser(self) -> ObjectPath:
        return self

    def exists(self, *, follow_symlinks: bool = True) -> bool:
        return self.is_file() or self.is_dir()

    def is_file(self) -> bool:
        try:
            self._bucket.head(self.key)
        except FileNotFoundError:
            return False
        return True

    def is_dir(self) -> bool:
        return not self.key or self._bucket.has_prefix(self.key)

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        """Size, last-modified time and, as the inode, a hash of the etag: what the
        store's change detection (``reads``, ``key_index``) compares."""
        meta = self._bucket.head(self.key)
        mtime_ns = int(meta["last_modified"].timestamp() * 1e9)
        ino = zlib.crc32(str(meta.get("e_tag") or mtime_ns).encode())
        size = int(meta["size"])
        mtime = mtime_ns / 1e9
        fields = (0o100644, ino, 0, 1, 0, 0, size, mtime, mtime, mtime)
        return os.stat_result(fields, {"st_mtime_ns": mtime_ns})

    def read_bytes(self) -> bytes:
        return self._bucket.get_bytes(self.key)

    def read_text(self, encoding: str | None = None, errors: str | None = None) -> str:
        return self.read_bytes().decode(encoding or "utf-8", errors or "strict")

    def write_bytes(self, data: Any) -> int:
        payload = bytes(data)
        self._bucket.put(self.key, payload)
        return len(payload)

    def write_text(
        self,
        data: str,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> int:
        return self.write_bytes(data.encode(encoding or "utf-8", errors or "strict"))

    def unlink(self, missing_ok: bool = False) -> None:
        # S3 deletes are idempotent: a missing object is not reported; check for it so
        # callers relying on FileNotFoundError (recovery) see the same as locally.
        if not missing_ok and not self.is_file():
            raise FileNotFoundError(f"no such object: {self.url}")
        self._bucket.delete(self.key)

    def mkdir(self, mode: int = 0o777, parents: bool = False, exist_ok: bool = False) -> None:
        """Folders are key prefixes: nothing to create."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{self.url} is an object-store path: read it through the store")

    # -- what only the seam (``fs``) and the lease use ---------------------------------

    def list_entries(self) -> list[ObjectEntry]:
        return self._bucket.list_dir(self.key)

    def upload(self, local: Path) -> None:
        """Put a finished local file here in one atomic PUT (or completed multipart)."""
        self._bucket.put(self.key, local)

    def copy_to(self, target: ObjectPath) -> None:
        self._bucket.copy(self.key, target.key)

    def put_conditional(self, data: bytes, *, etag: str | None) -> str:
        """Create (``etag=None``: ``If-None-Match: *``) or replace only the version
        ``etag`` (``If-Match``); obstore's ``AlreadyExistsError`` / ``PreconditionError``
        when the condition fails. Returns the new etag."""
        mode: Any = "create" if etag is None else {"e_tag": etag}
        return self._bucket.put(self.key, data, mode=mode)

    def get_with_etag(self) -> tuple[bytes, str]:
        result = self._bucket.call("read", self.key, "get", self.key)
        return bytes(result.bytes()), str(result.meta["e_tag"])

    def open_ranges(self) -> io.RawIOBase:
        """A seekable file over ranged GETs: pyarrow reads a footer in one or two."""
        return _RangeReader(self)


class _RangeReader(io.RawIOBase):
    def __init__(self, path: ObjectPath) -> None:
        super().__init__()
        self._path = path
        self._size = int(path._bucket.head(path.key)["size"])
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._size - self._pos)
        if n <= 0:
            return 0
        data = self._path._bucket.get_range(self._path.key, self._pos, self._pos + n)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


_classes: dict[tuple[str, ObjectStoreOptions], type[ObjectPath]] = {}
_configured: dict[str, ObjectStoreOptions] = {}  # bucket -> the last explicit options
_classes_guard = threading.Lock()


def object_root(url: str | ObjectPath, options: ObjectStoreOptions | None = None) -> ObjectPath:
    """The ``ObjectPath`` of ``s3://bucket/prefix``; an ``ObjectPath`` is returned as
    it is.

    Without ``options``, a bucket this process was configured for before (the catalog
    names its endpoint once; Dagster resources and checks get the root back as a URL
    string) keeps those options; otherwise they come from the AWS variables."""
    if isinstance(url, ObjectPath):
        return url
    rest = url[len(_SCHEME) :] if url.lower().startswith(_SCHEME) else ""
    bucket, _, prefix = rest.partition("/")
    if not bucket or not url.lower().startswith(_SCHEME):
        raise ConfigError(f"invalid object-store root {url!r}: write it s3://bucket/prefix")
    with _classes_guard:
        if options is not None:
            _configured[bucket] = options
        resolved = (options or _configured.get(bucket) or ObjectStoreOptions()).with_env()
        cls = _classes.get((bucket, resolved))
        if cls is None:
            cls = type("ObjectPath", (ObjectPath,), {"_bucket": _Bucket(bucket, resolved)})
            _classes[(bucket, resolved)] = cls
    parts = [p for p in prefix.split("/") if p]
    if any(p in {".", ".."} for p in parts):
        raise ConfigError(f"invalid object-store root {url!r}: no '.' or '..' parts")
    return cls("/", bucket, *parts)
