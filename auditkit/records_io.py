"""records.parquet: the record table's Arrow schema, streamed to part files as a phase runs.

Records are fixed-width columns: the hot path appends one tuple per request (~0.1 µs) and each
chunk of rows becomes one Arrow record batch off the per-request path: times as int64, token
counts as int32, status/variant/phase as dictionary arrays (a one-byte code per row), the
output hash as its 64-character hex string (the evidence compares outputs by equality; Parquet
stores it dictionary-encoded when outputs repeat).

Crash safety is a part-file scheme. While a phase runs, every batch is written to
`<phase>/records.parts/part-w<worker>-<n>.parquet`, each part complete with its own footer and
written tmp → fsync → rename, so a SIGKILL leaves every flushed part readable (a plain
ParquetWriter has no footer until it is closed: a killed writer leaves an unreadable file).
When the phase ends, `write_records` writes `records.parquet` (one file, atomically) and
removes the parts; `read_records` reads records.parquet, or stitches the parts of a run that
never got there.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from auditkit.results import RECORD_COLUMNS, LoggedOutput, RecordSource

RECORDS = "records.parquet"
PARTS = "records.parts"
#: part files queued for the writer thread at most (bounds memory when the disk lags)
MAX_PENDING = 3
#: up to this many rows a table is read whole (a few MB); above, one column at a time
WHOLE_READ_ROWS = 100_000
#: a phase with more rows than this keeps its records in its files (`PhaseRecords`, read by
#: column) instead of one DataFrame (~340 MB per 1M rows); smaller ones stay a DataFrame
LAZY_ROWS = WHOLE_READ_ROWS
#: rows per row group when records.parquet is written from the part files: a slice passes
#: through Arrow, pandas and Arrow again (~3 copies), so it is kept to a part's size
WRITE_ROWS = 16_384
#: rows per chunk `PhaseRecords.chunks` hands out
CHUNK_ROWS = 65_536

#: beside RECORD_COLUMNS in every part file: which load-generator process sent the query
WORKER = "worker"
_DICT = pa.dictionary(pa.int8(), pa.string())
_TYPES: dict[str, pa.DataType] = {
    "phase": _DICT,
    "query_id": pa.int64(),
    "sample_index": pa.int64(),
    "scheduled_ns": pa.int64(),
    "sent_ns": pa.int64(),
    "first_byte_ns": pa.int64(),
    "first_token_ns": pa.int64(),
    "completed_ns": pa.int64(),
    "latency_ns": pa.int64(),
    "ttft_ns": pa.int64(),
    "status": _DICT,
    "http_status": pa.int16(),
    "error": pa.string(),
    "prompt_tokens": pa.int32(),
    "output_tokens": pa.int32(),
    "cached_tokens": pa.int32(),
    "output_sha256": pa.string(),
    "variant": _DICT,
}
#: one row as Arrow reads a tuple (dictionary columns as plain strings first)
_ROW = pa.struct(
    [pa.field(c, pa.string() if _TYPES[c] == _DICT else _TYPES[c]) for c in RECORD_COLUMNS]
)
SCHEMA = pa.schema(
    [*(pa.field(c, _TYPES[c]) for c in RECORD_COLUMNS), pa.field(WORKER, pa.int16())]
)
#: the record table's non-nullable integer columns (as `auditkit.results.records_frame`)
_FRAME_INT64 = ("query_id", "sample_index")


def rows_to_batch(rows: Sequence[tuple[Any, ...]], worker: int = 0) -> pa.RecordBatch:
    """Rows in RECORD_COLUMNS order → one record batch of SCHEMA.

    The tuples go to Arrow as one struct array (~0.5 µs a row, half of transposing them in
    Python first); the string columns with few values are then dictionary-encoded in Arrow.
    """
    table = pa.RecordBatch.from_struct_array(pa.array(rows, _ROW))
    arrays = [
        table.column(i).dictionary_encode().cast(_DICT)
        if _TYPES[name] == _DICT
        else table.column(i)
        for i, name in enumerate(RECORD_COLUMNS)
    ]
    arrays.append(pa.array(np.full(len(rows), worker, np.int16)))
    return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)


def to_frame(
    table: pa.Table, *, keep_worker: bool | None = None, sort: bool = False
) -> pd.DataFrame:
    """The record table from Arrow, with `records_frame`'s dtypes (nullable Int64 times and
    counts, string columns); sorted by query and send time when asked. `worker` is kept when
    asked, or (None) when it varies."""
    return _frame(table.__getitem__, table.column_names, table.num_rows, keep_worker, sort)


def frame_from_files(
    paths: Sequence[Path], *, keep_worker: bool | None = None, sort: bool = False
) -> pd.DataFrame:
    """The record table of Parquet files (records.parquet, or a phase's parts), as `to_frame`.

    A large table is read one column at a time, each converted before the next is read, so
    the peak is the frame plus one column (the whole Arrow table beside the frame doubled it)."""
    if not paths:
        return to_frame(empty_table(), keep_worker=keep_worker)
    rows = sum(pq.read_metadata(p).num_rows for p in paths)
    if rows <= WHOLE_READ_ROWS:
        # small tables are read whole: a read per column per file cost ~20 ms a phase
        tables = [pq.read_table(p) for p in paths]
        return to_frame(
            pa.concat_tables(tables, promote_options="default"), keep_worker=keep_worker, sort=sort
        )
    names = list(dict.fromkeys(n for p in paths for n in pq.read_schema(p).names))

    def read(name: str) -> pa.ChunkedArray:
        chunks = [c for p in paths for c in pq.read_table(p, columns=[name])[name].chunks]
        return pa.chunked_array(chunks)

    return _frame(read, names, rows, keep_worker, sort)


def _frame(
    read: Callable[[str], pa.ChunkedArray],
    names: Sequence[str],
    rows: int,
    keep_worker: bool | None,
    sort: bool,
) -> pd.DataFrame:
    has_worker = WORKER in names
    if keep_worker is None:
        keep_worker = has_worker and rows > 0 and pc.count_distinct(read(WORKER)).as_py() > 1
    wanted = [c for c in RECORD_COLUMNS if c in names]
    if keep_worker and has_worker:
        wanted.append(WORKER)
    order = None
    if sort and rows:
        # stable, like pandas' sort_values(kind="stable") on the same keys
        keys = pa.table({"query_id": read("query_id"), "sent_ns": read("sent_ns")})
        order = pc.sort_indices(keys, [("query_id", "ascending"), ("sent_ns", "ascending")])
        del keys
    data: dict[str, pd.Series[Any]] = {}
    for name in wanted:
        column = read(name)
        if order is not None:
            column = column.take(order)
        data[name] = _series(name, column)
        del column
        # hand the column's Arrow buffers back to the OS now: the allocator would keep them
        pa.default_memory_pool().release_unused()
    if "variant" not in data:  # written before the column existed
        data["variant"] = pd.Series(["main"] * rows, dtype="string")
    if keep_worker and not has_worker:
        data[WORKER] = pd.Series(np.zeros(rows, np.int64))
    order_out = [*RECORD_COLUMNS, *([WORKER] if keep_worker else [])]
    return pd.DataFrame({c: data[c] for c in order_out}, copy=False)


def _series(name: str, column: pa.ChunkedArray) -> pd.Series[Any]:
    if pa.types.is_dictionary(column.type):
        column = column.cast(pa.string())
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        series = column.to_pandas(types_mapper=_STRING.get).astype("string")
        return series.fillna("main") if name == "variant" else series
    if name in _FRAME_INT64 or name == WORKER:
        return column.to_pandas().astype("int64")
    return column.to_pandas(types_mapper=_INT64.get)


_STRING = {pa.string(): pd.StringDtype(), pa.large_string(): pd.StringDtype()}
_INT64 = {t: pd.Int64Dtype() for t in (pa.int16(), pa.int32(), pa.int64())}


@dataclasses.dataclass(frozen=True)
class PhaseRecords:
    """A phase's records left in its folder (`auditkit.results.RecordSource`): the part files
    while they exist, then records.parquet (written from them, sorted; the parts are removed
    only after it is in place). Reads only the columns asked for; O(rows) memory only for
    `frame()`, which builds the whole table as `frame_from_files` does."""

    folder: Path
    #: the phase's part files in order (all workers')
    parts: tuple[Path, ...]
    rows: int
    #: keep the `worker` column (a phase run by several load-generator processes)
    keep_worker: bool = False

    @property
    def num_rows(self) -> int:
        return self.rows

    @property
    def column_names(self) -> tuple[str, ...]:
        return (*RECORD_COLUMNS, *((WORKER,) if self.keep_worker else ()))

    def files(self) -> tuple[list[Path], bool]:
        """(the files that hold the records, whether they are already sorted)."""
        if self.parts and all(p.exists() for p in self.parts):
            return list(self.parts), False
        if (self.folder / RECORDS).exists():
            return [self.folder / RECORDS], True
        raise FileNotFoundError(f"the records of {self.folder} are gone (no parts, no {RECORDS})")

    def frame(self) -> pd.DataFrame:
        files, done = self.files()
        return frame_from_files(files, keep_worker=self.keep_worker, sort=not done)

    def order(self, files: Sequence[Path]) -> pa.Array:
        """The row order of the record table (by query, then send time; stable) over `files`
        read one after the other: two int64 columns, the only whole columns this reads."""
        keys = pa.table({k: _read_column(files, k) for k in ("query_id", "sent_ns")})
        return pc.sort_indices(keys, [("query_id", "ascending"), ("sent_ns", "ascending")])

    def columns(self, names: tuple[str, ...]) -> pd.DataFrame:
        files, done = self.files()
        order = None if done else self.order(files)
        data: dict[str, pd.Series[Any]] = {}
        for name in names:
            column = _read_column(files, name)
            if order is not None:
                column = column.take(order)
            data[name] = _series(name, column)
            del column
        return pd.DataFrame(data, copy=False)

    def chunks(self, names: tuple[str, ...]) -> Iterator[pd.DataFrame]:
        files, _ = self.files()
        for path in files:
            handle = pq.ParquetFile(path)
            present = [n for n in names if n in handle.schema_arrow.names]
            for table in _row_group_chunks(handle, present):
                yield pd.DataFrame({n: _series(n, _filled(table, n)) for n in names}, copy=False)


def _row_group_chunks(handle: pq.ParquetFile, columns: list[str]) -> Iterator[pa.Table]:
    """A file's columns about CHUNK_ROWS rows at a time, whole row groups per read. Not one
    `iter_batches` over the file: its reader keeps every row group's decoded dictionary page
    until it ends, and timestamps of a real run (distinct values, dictionary-encoded up to the
    writer's page limit) then cost ~8 bytes a row a column: +54 MB in a 1M-query phase's
    figures, measured. A row group larger than two chunks is read in batches of its own."""
    meta = handle.metadata
    group: list[int] = []
    rows = 0
    for g in range(meta.num_row_groups):
        group.append(g)
        rows += meta.row_group(g).num_rows
        if rows < CHUNK_ROWS and g < meta.num_row_groups - 1:
            continue
        if rows > 2 * CHUNK_ROWS:
            for batch in handle.iter_batches(
                CHUNK_ROWS, row_groups=group, columns=columns, use_threads=False
            ):
                yield pa.Table.from_batches([batch])
        else:
            yield handle.read_row_groups(group, columns=columns, use_threads=False)
        group, rows = [], 0


def _filled(table: pa.Table | pa.RecordBatch, name: str) -> pa.ChunkedArray:
    """Column `name` of `table`, or its default when the file predates it (variant, worker)."""
    if name in table.schema.names:
        column = table.column(name)
        return column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column])
    if name == "variant":
        return pa.chunked_array([pa.array(["main"] * table.num_rows, pa.string())])
    if name == WORKER:
        return pa.chunked_array([pa.array(np.zeros(table.num_rows, np.int16))])
    raise KeyError(name)


def _read_column(paths: Sequence[Path], name: str) -> pa.ChunkedArray:
    """One column over `paths`, read file by file (only that column)."""
    chunks: list[pa.Array] = []
    for path in paths:
        present = name in pq.read_schema(path).names
        table = pq.read_table(path, columns=[name] if present else [])
        chunks += _filled(table, name).chunks
    return pa.chunked_array(chunks, type=chunks[0].type if chunks else _TYPES.get(name))


def write_sorted(target: Any, source: PhaseRecords) -> None:
    """records.parquet from a phase's part files, in the record table's order, without
    holding the table: parts are read in order and merged, and a row is written once no later
    part can hold a row before it (each part's smallest query id, from its footer, says so).
    Memory is the rows completed out of order, a few parts' worth in a phase that keeps its
    queries moving. The same columns, dtypes and pandas metadata as `DataFrame.to_parquet` of
    the whole frame; row groups of about WRITE_ROWS rows."""
    files, _ = source.files()
    lowest = [_min_query_id(p) for p in files]
    # the smallest query id in any part after part k (None: no rows after it)
    later: list[int | None] = [None] * len(files)
    for k in range(len(files) - 2, -1, -1):
        after = [v for v in (lowest[k + 1], later[k + 1]) if v is not None]
        later[k] = min(after) if after else None
    keys = [("query_id", "ascending"), ("sent_ns", "ascending"), (_POSITION, "ascending")]
    held: pa.Table | None = None
    ready: list[pa.Table] = []
    ready_rows = 0
    offset = 0
    writer: pq.ParquetWriter | None = None

    def flush() -> None:
        nonlocal writer, ready, ready_rows
        if not ready:
            return
        table = pa.concat_tables(ready, promote_options="default").drop_columns([_POSITION])
        ready, ready_rows = [], 0
        frame = to_frame(table, keep_worker=source.keep_worker)
        out = pa.Table.from_pandas(frame, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(target, out.schema)
        writer.write_table(out)

    for k, path in enumerate(files):
        part = pq.read_table(path)
        part = part.append_column(_POSITION, pa.array(np.arange(offset, offset + part.num_rows)))
        offset += part.num_rows
        held = part if held is None else pa.concat_tables([held, part], promote_options="default")
        if later[k] is None:
            done, held = held, None
        else:
            early = pc.less(held["query_id"], later[k])
            done, held = held.filter(early), held.filter(pc.invert(early))
        if done.num_rows:
            ready.append(done.sort_by(keys))
            ready_rows += done.num_rows
        if ready_rows >= WRITE_ROWS:
            flush()
    flush()
    if writer is None:
        to_frame(empty_table(), keep_worker=source.keep_worker).to_parquet(target, index=False)
    else:
        writer.close()


_POSITION = "__position"


def _min_query_id(path: Path) -> int | None:
    """The smallest query id in a Parquet file, from its row groups' statistics (None when a
    row group has none: then nothing is written before that part is read)."""
    meta = pq.read_metadata(path)
    if meta.num_rows == 0:
        return None
    column = meta.schema.to_arrow_schema().get_field_index("query_id")
    lows = []
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(column).statistics
        if stats is None or not stats.has_min_max:
            return -(2**63)
        lows.append(int(stats.min))
    return min(lows)


def empty_table() -> pa.Table:
    """A record table of SCHEMA with no rows."""
    return SCHEMA.empty_table()


class PartWriter:
    """Writes record batches as part files of one phase folder, on a background thread.

    One thread, so parts land in order and the event loop only pays for the Arrow conversion
    (Parquet encoding and fsync release the GIL). `close()` waits for every part.
    """

    def __init__(self, phase_dir: str | Path, worker: int = 0) -> None:
        self.parts_dir = Path(phase_dir) / PARTS
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        self.worker = worker
        # a killed earlier run's parts of this worker would be read as this run's
        for stale in self.parts_dir.glob(f"part-w{worker:03d}-*.parquet"):
            stale.unlink(missing_ok=True)
        self.count = 0
        self.rows = 0
        #: the parts queued so far, in order
        self.paths: list[Path] = []
        self._pool = _writer_pool()
        self._pending: list[concurrent.futures.Future[Path]] = []

    def write(self, batch: pa.RecordBatch) -> None:
        """Queue one batch as the next part file."""
        path = self.parts_dir / f"part-w{self.worker:03d}-{self.count:06d}.parquet"
        self.count += 1
        self.rows += batch.num_rows
        self.paths.append(path)
        for done in [f for f in self._pending if f.done()]:
            done.result()  # a failed write (disk full) surfaces here, not at the phase's end
            self._pending.remove(done)
        if len(self._pending) >= MAX_PENDING:
            # a disk slower than the records arrive: wait rather than queue without bound
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(_write_part, path, batch))

    def flush(self) -> None:
        """Wait until every queued part is on disk (raises a write's error)."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        """Flush, then stop the writer thread (a later `write` starts a new one)."""
        try:
            self.flush()
        finally:
            self._pool.shutdown(wait=True)
            self._pool = _writer_pool()


def _writer_pool() -> concurrent.futures.ThreadPoolExecutor:
    # no thread until the first part is submitted
    return concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="auditkit-records")


def _write_part(path: Path, batch: pa.RecordBatch) -> Path:
    replace_synced(path, lambda fh: pq.write_table(pa.Table.from_batches([batch]), fh))
    return path


def replace_synced(target: Path, write: Callable[[Any], object]) -> None:
    """`write(file)` to a hidden temp file beside `target` (`.<name>.<random>.tmp`: dataset
    readers skip names starting with ".", and two writers never share one), synced, then
    renamed over `target`; the folder is synced too."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        # mkstemp makes 0600; the artifacts hold no secrets (config.yaml is redacted, records
        # keep output hashes, not texts), so they get the mode any new file gets (the umask)
        os.fchmod(fd, 0o666 & ~process_umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)


@functools.cache
def process_umask() -> int:
    """The process's umask (read once; /proc avoids os.umask's set-and-restore race)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_parts(phase_dir: str | Path, columns: Sequence[str] | None = None) -> pa.Table:
    """Every flushed part of a phase (all workers) as one table; empty when there are none."""
    parts = sorted((Path(phase_dir) / PARTS).glob("part-*.parquet"))
    if not parts:
        table = empty_table()
        return table.select(list(columns)) if columns else table
    tables = [pq.read_table(p, columns=list(columns) if columns else None) for p in parts]
    return pa.concat_tables(tables, promote_options="default")


def read_table(phase_dir: str | Path, columns: Sequence[str] | None = None) -> pa.Table:
    """records.parquet of a phase folder as Arrow (only `columns` when given), or the stitched
    part files of a phase that never finished writing it (a killed run)."""
    folder = Path(phase_dir)
    if (folder / RECORDS).exists():
        wanted = None
        if columns:
            present = set(pq.read_schema(folder / RECORDS).names)
            wanted = [c for c in columns if c in present]
        return pq.read_table(folder / RECORDS, columns=wanted)
    return read_parts(folder, columns)


def read_records(phase_dir: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The record table of a phase folder (see `read_table`), with the table's dtypes. With
    `columns`, only those are read (a summary needs a few of the 19)."""
    if columns:
        table = read_table(phase_dir, columns)
        return pd.DataFrame({c: _series(c, table[c]) for c in table.column_names}, copy=False)
    folder = Path(phase_dir)
    if (folder / RECORDS).exists():
        return frame_from_files([folder / RECORDS])
    return frame_from_files(sorted((folder / PARTS).glob("part-*.parquet")))


def write_records(phase_dir: str | Path, records: pd.DataFrame | RecordSource) -> Path:
    """records.parquet of a finished (or interrupted) phase, written atomically; then the
    phase's part files, now redundant, are removed. Records left in their part files are
    written from them a slice at a time (`write_sorted`), never as one table."""
    folder = Path(phase_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / RECORDS
    if isinstance(records, PhaseRecords):
        source = records
        if source.files()[1] and source.folder.resolve() == folder.resolve():
            remove_parts(folder)  # already written from these parts
            return target
        if source.rows <= WHOLE_READ_ROWS:  # small: the frame, exactly as before
            frame = source.frame()
            replace_synced(target, lambda fh: frame.to_parquet(fh, index=False))
        else:
            replace_synced(target, lambda fh: write_sorted(fh, source))
    else:
        whole = records if isinstance(records, pd.DataFrame) else records.frame()
        replace_synced(target, lambda fh: whole.to_parquet(fh, index=False))
    remove_parts(folder)
    return target


OUTPUTS = "outputs.parquet"


def write_outputs(phase_dir: str | Path, outputs: Sequence[LoggedOutput]) -> Path | None:
    """outputs.parquet: the answers a phase logged, whole (zstd-compressed), so the run can be
    re-verified and its accuracy logs re-rendered without the endpoint; None when none."""
    if not outputs:
        return None
    rows = [dataclasses.asdict(o) for o in outputs]
    for row in rows:
        texts = row["logprob_texts"]
        row["logprob_texts"] = None if texts is None else list(texts)
    frame = pd.DataFrame(rows)
    target = Path(phase_dir) / OUTPUTS
    target.parent.mkdir(parents=True, exist_ok=True)
    replace_synced(target, lambda fh: frame.to_parquet(fh, index=False, compression="zstd"))
    return target


def read_outputs(phase_dir: str | Path) -> tuple[LoggedOutput, ...]:
    """A phase's logged answers back from outputs.parquet (empty when it logged none)."""
    target = Path(phase_dir) / OUTPUTS
    if not target.is_file():
        return ()
    frame = pd.read_parquet(target)
    out = []
    for raw in frame.to_dict("records"):
        row: dict[str, Any] = {
            str(k): (None if isinstance(v, float) and v != v else v) for k, v in raw.items()
        }
        texts = row.get("logprob_texts")
        row["logprob_texts"] = None if texts is None else tuple(str(t) for t in texts)
        for key in ("query_id", "sample_index", "chunks", "output_tokens", "logprob_tokens"):
            if row.get(key) is not None:
                row[key] = int(row[key])
        out.append(LoggedOutput(**row))
    return tuple(out)


def remove_parts(phase_dir: str | Path) -> None:
    """Delete a phase's part files (after records.parquet holds them, or before a rerun)."""
    shutil.rmtree(Path(phase_dir) / PARTS, ignore_errors=True)
