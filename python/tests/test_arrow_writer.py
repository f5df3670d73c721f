"""The Arrow -> DuckDB writer, through `kafkars_arrow_ipc(data BLOB)`, against DuckDB's own
Arrow reader.

kafka_scan writes decoded payloads (Arrow arrays) into DuckDB vectors through one writer, and
`kafkars_arrow_ipc` runs that writer on an Arrow IPC stream. DuckDB reads Arrow itself
(`con.from_arrow(table)`), so for the same data both must give the same DuckDB types and the same
values, row for row: the property test draws random schemas (nested up to depth 3) and data and
compares the two. Where kafkars reads Arrow differently on purpose, `duckdb_readable` rewrites
the input for DuckDB's reader and says why; the example tests pin each type's mapping and the
errors.
"""

from __future__ import annotations

import datetime
import decimal
import io
import math
import random
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import duckdb
import nanoarrow
import nanoarrow.ipc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kafkars

CHUNK = 2048


@pytest.fixture(scope="module")
def db() -> Iterator[duckdb.DuckDBPyConnection]:
    """One connection with the extension loaded, shared by the module's tests (hypothesis runs
    many examples per test, and a connection per example would dominate the runtime)."""
    connection = kafkars.connect()
    yield connection
    connection.close()


def ipc_stream(table: pa.Table, batch_rows: int | None = None) -> bytes:
    """The table as an Arrow IPC stream, in record batches of at most `batch_rows`."""
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=batch_rows)
    return sink.getvalue()


def through_kafkars(db: duckdb.DuckDBPyConnection, blob: bytes) -> tuple[list[str], pa.Table]:
    """DuckDB's column types and the rows (as Arrow) of kafkars_arrow_ipc over `blob`."""
    types = [
        row[1]
        for row in db.execute("DESCRIBE SELECT * FROM kafkars_arrow_ipc(?)", [blob]).fetchall()
    ]
    return types, db.sql("SELECT * FROM kafkars_arrow_ipc(?)", params=[blob]).to_arrow_table()


def through_duckdb(db: duckdb.DuckDBPyConnection, table: pa.Table) -> tuple[list[str], pa.Table]:
    """The same for DuckDB's own Arrow reader."""
    relation = db.from_arrow(table)
    return [str(t) for t in relation.types], relation.to_arrow_table()


def rows_of(table: pa.Table) -> list[tuple[Any, ...]]:
    return list(zip(*(column.to_pylist() for column in table.columns), strict=True))


def assert_same(mine: pa.Table, theirs: pa.Table) -> None:
    """Equal as Arrow (stricter than Python values: union tags, exact types); on a mismatch,
    name the first row that differs. And NULLs in kafkars' output reach down (checked on its
    own: DuckDB's reader does not null every field under a NULL struct row)."""
    assert mine.schema == theirs.schema
    assert mine.num_rows == theirs.num_rows
    if mine.num_rows == 0:
        return
    for name in mine.column_names:
        a, b = mine[name].combine_chunks(), theirs[name].combine_chunks()
        if not a.equals(b):
            for index in range(len(a)):
                x, y = a.slice(index, 1), b.slice(index, 1)
                assert x.equals(y), f"{name}, row {index}: {x.to_pylist()} != {y.to_pylist()}"
            pytest.fail(f"{name}: the columns differ, but no row does")
        assert_nulls_reach_down(a, name)


def assert_nulls_reach_down(array: pa.Array, path: str) -> None:
    """Under a NULL struct or union row every field/member is NULL, and a union member is NULL
    on every row that selects another one; recursively."""
    kind = array.type
    if pa.types.is_struct(kind):
        parent_null = array.is_null().to_numpy(zero_copy_only=False)
        for index, field in enumerate(kind):
            child = array.field(index)
            leaked = parent_null & ~child.is_null().to_numpy(zero_copy_only=False)
            assert not leaked.any(), f"{path}.{field.name}: a value under a NULL row"
            assert_nulls_reach_down(child, f"{path}.{field.name}")
    elif pa.types.is_union(kind):
        selected = array.type_codes.to_numpy(zero_copy_only=False)
        for index, (code, field) in enumerate(zip(kind.type_codes, kind, strict=True)):
            child = array.field(index)
            leaked = (selected != code) & ~child.is_null().to_numpy(zero_copy_only=False)
            assert not leaked.any(), f"{path}.{field.name}: a value where not selected"
            assert_nulls_reach_down(child, f"{path}.{field.name}")
    elif pa.types.is_map(kind):
        assert_nulls_reach_down(array.keys, f"{path}.key")
        assert_nulls_reach_down(array.items, f"{path}.value")
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        assert_nulls_reach_down(array.flatten(), f"{path}[]")


# --- what kafkars reads differently from DuckDB, on purpose ---------------------------------


def duckdb_readable(array: pa.Array) -> pa.Array:
    """Rewrite `array` into what DuckDB's Arrow reader reads as kafkars reads `array`.

    The differences, each a choice of kafkars:
    - float16: DuckDB 2.0's reader refuses it; kafkars reads FLOAT.
    - decimal256 (precision <= 38): DuckDB refuses it; kafkars reads DECIMAL(p, s).
    - timestamp[s] and timestamp[ms] without a zone: DuckDB reads TIMESTAMP_S / TIMESTAMP_MS,
      kafkars the usual TIMESTAMP (microseconds; the same instants).
    - timestamp[ns] with a zone: DuckDB reads TIMESTAMPTZ_NS, kafkars TIMESTAMPTZ
      (microseconds, truncated towards zero as DuckDB's own casts do).
    - time64[ns]: DuckDB reads TIME_NS, kafkars TIME (microseconds, truncated).
    - fixed_size_list: DuckDB reads ARRAY, kafkars LIST (decoders make lists; list functions
      apply to both).
    - dense unions: DuckDB refuses them; unions with type codes other than 0..n-1: DuckDB
      fails ("Arrow union tag out of range"). kafkars reads both; DuckDB gets the same union
      as a sparse one with codes 0..n-1.
    Not rewritable here (pyarrow cannot hold them) and tested apart: day-time and year-month
    intervals, which DuckDB's reader misreads.

    And two rewrites that change nothing DuckDB shows, for the sake of the reference itself:
    dictionaries are decoded (DuckDB reads them as their values too, but fails on a list whose
    rows are all empty over a dictionary child) and string/binary views become plain strings
    and binaries (both VARCHAR/BLOB; pyarrow's `take`, which rebuilds dense unions, has no
    kernel for views). kafkars still gets the original types; the example tests show DuckDB
    reading dictionaries and views directly.
    """
    kind = array.type
    if pa.types.is_float16(kind):
        return array.cast(pa.float32())
    if pa.types.is_decimal256(kind):
        return array.cast(pa.decimal128(kind.precision, kind.scale))
    if pa.types.is_timestamp(kind):
        if kind.tz is None and kind.unit in ("s", "ms"):
            return array.cast(pa.timestamp("us"))
        if kind.tz is not None and kind.unit == "ns":
            return pc.cast(array, pa.timestamp("us", kind.tz), safe=False)
        return array
    if pa.types.is_time64(kind) and kind.unit == "ns":
        return pc.cast(array, pa.time64("us"), safe=False)
    if kind == pa.string_view():
        return array.cast(pa.string())
    if kind == pa.binary_view():
        return array.cast(pa.binary())
    if pa.types.is_dictionary(kind):
        return duckdb_readable(array.dictionary_decode())
    mask = array.is_null() if array.null_count else None
    if pa.types.is_struct(kind):
        # field(), not flatten(): flatten cannot push NULLs into a union child.
        children = [duckdb_readable(array.field(i)) for i in range(kind.num_fields)]
        fields = [pa.field(f.name, c.type, f.nullable) for f, c in zip(kind, children, strict=True)]
        return pa.StructArray.from_arrays(children, fields=fields, mask=mask)
    if pa.types.is_map(kind):
        # The offsets index into all entries (`values` ignores the map's own offset).
        keys, items = (duckdb_readable(child) for child in array.values.flatten())
        map_type = pa.map_(
            kind.key_field.with_type(keys.type), kind.item_field.with_type(items.type)
        )
        return pa.MapArray.from_arrays(array.offsets, keys, items, type=map_type, mask=mask)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        values = duckdb_readable(array.values)
        builder = pa.ListArray if pa.types.is_list(kind) else pa.LargeListArray
        make = pa.list_ if pa.types.is_list(kind) else pa.large_list
        list_type = make(kind.value_field.with_type(values.type))
        return builder.from_arrays(array.offsets, values, type=list_type, mask=mask)
    if pa.types.is_fixed_size_list(kind):
        size = kind.list_size
        values = duckdb_readable(array.values)
        offsets = pa.array((np.arange(len(array) + 1) + array.offset) * size, pa.int32())
        list_type = pa.list_(kind.value_field.with_type(values.type))
        return pa.ListArray.from_arrays(offsets, values, type=list_type, mask=mask)
    if pa.types.is_union(kind):
        return sparse_union(array)
    return array


def sparse_union(array: pa.UnionArray) -> pa.UnionArray:
    """The union as a sparse one with type codes 0..n-1, members rewritten for DuckDB."""
    kind = array.type
    codes = list(kind.type_codes)
    selected = np.asarray(array.type_codes.to_numpy(zero_copy_only=False), dtype=np.int64)
    children = []
    for index, code in enumerate(codes):
        child = duckdb_readable(array.field(index))
        if kind.mode == "dense":
            offsets = array.offsets.to_numpy(zero_copy_only=False)
            positions = pa.array(
                [int(o) if t == code else None for t, o in zip(selected, offsets, strict=True)],
                pa.int64(),
            )
            child = child.take(positions)
        children.append(child)
    tags = pa.array([codes.index(t) for t in selected], pa.int8())
    return pa.UnionArray.from_sparse(tags, children, field_names=[f.name for f in kind])


def readable_table(table: pa.Table) -> pa.Table:
    return pa.table(
        {
            name: duckdb_readable(column.combine_chunks())
            for name, column in zip(table.column_names, table.columns, strict=True)
        }
    )


# --- random schemas ------------------------------------------------------------------------

LEAF_TYPES = [
    pa.null(),
    pa.bool_(),
    pa.int8(),
    pa.int16(),
    pa.int32(),
    pa.int64(),
    pa.uint8(),
    pa.uint16(),
    pa.uint32(),
    pa.uint64(),
    pa.float16(),
    pa.float32(),
    pa.float64(),
    pa.string(),
    pa.large_string(),
    pa.string_view(),
    pa.binary(),
    pa.large_binary(),
    pa.binary_view(),
    pa.binary(1),
    pa.binary(16),
    pa.uuid(),
    pa.date32(),
    pa.date64(),
    pa.time32("s"),
    pa.time32("ms"),
    pa.time64("us"),
    pa.time64("ns"),
    pa.month_day_nano_interval(),
    *(pa.timestamp(unit) for unit in ("s", "ms", "us", "ns")),
    *(pa.timestamp(unit, "UTC") for unit in ("s", "ms", "us", "ns")),
    pa.timestamp("ms", "America/New_York"),
    pa.timestamp("ns", "+01:00"),
    *(pa.duration(unit) for unit in ("s", "ms", "us", "ns")),
]


@st.composite
def decimal_types(draw: st.DrawFn) -> pa.DataType:
    make, most = draw(
        st.sampled_from(
            [(pa.decimal32, 9), (pa.decimal64, 18), (pa.decimal128, 38), (pa.decimal256, 38)]
        )
    )
    precision = draw(st.integers(1, most))
    return make(precision, draw(st.integers(0, precision)))


leaf_types = st.one_of(st.sampled_from(LEAF_TYPES), decimal_types())

# Names unique ignoring case (DuckDB resolves names without case), some with spaces.
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_ ]{0,6}", fullmatch=True)


def unique_names(count: int) -> st.SearchStrategy[list[str]]:
    return st.lists(names, min_size=count, max_size=count, unique_by=str.lower)


@st.composite
def struct_types(draw: st.DrawFn, children: st.SearchStrategy[pa.DataType]) -> pa.DataType:
    count = draw(st.integers(1, 4))
    return pa.struct([pa.field(name, draw(children)) for name in draw(unique_names(count))])


@st.composite
def list_types(draw: st.DrawFn, children: st.SearchStrategy[pa.DataType]) -> pa.DataType:
    element = pa.field(draw(st.sampled_from(["item", "element"])), draw(children))
    make = draw(
        st.sampled_from(
            [pa.list_, pa.large_list, lambda e: pa.list_(e, 1), lambda e: pa.list_(e, 3)]
        )
    )
    return make(element)


MAP_KEY_TYPES = [pa.string(), pa.int32(), pa.int64(), pa.binary()]


@st.composite
def map_types(draw: st.DrawFn, children: st.SearchStrategy[pa.DataType]) -> pa.DataType:
    return pa.map_(draw(st.sampled_from(MAP_KEY_TYPES)), draw(children))


@st.composite
def union_types(draw: st.DrawFn, children: st.SearchStrategy[pa.DataType]) -> pa.DataType:
    count = draw(st.integers(1, 4))
    fields = [pa.field(name, draw(children)) for name in draw(unique_names(count))]
    if draw(st.booleans()):
        codes = list(range(count))
    else:
        codes = draw(st.lists(st.integers(0, 127), min_size=count, max_size=count, unique=True))
    mode = draw(st.sampled_from(["sparse", "dense"]))
    return pa.union(fields, mode, codes)


DICTIONARY_VALUE_TYPES = [
    pa.string(),
    pa.large_string(),
    pa.binary(),
    pa.int32(),
    pa.int64(),
    pa.float64(),
    pa.date32(),
    pa.timestamp("us"),
    pa.decimal128(10, 2),
]
DICTIONARY_INDEX_TYPES = [
    pa.int8(),
    pa.int16(),
    pa.int32(),
    pa.int64(),
    pa.uint8(),
    pa.uint16(),
    pa.uint32(),
    pa.uint64(),
]
dictionary_types = st.builds(
    pa.dictionary,
    st.sampled_from(DICTIONARY_INDEX_TYPES),
    st.sampled_from(DICTIONARY_VALUE_TYPES),
)


def arrow_types(depth: int) -> st.SearchStrategy[pa.DataType]:
    """Any type kafkars maps, nested up to `depth` levels."""
    if depth == 0:
        return st.one_of(leaf_types, dictionary_types)
    inner = arrow_types(depth - 1)
    return st.one_of(
        leaf_types,
        dictionary_types,
        struct_types(inner),
        list_types(inner),
        map_types(inner),
        union_types(inner),
    )


# --- random data ---------------------------------------------------------------------------

MIN_MICROS = -62_135_596_800_000_000  # 0001-01-01: Python's datetime range
MAX_MICROS = 253_402_300_799_999_999  # 9999-12-31 23:59:59.999999
TEXT = "abcxyz ABC019_-é日本😀\n\"'\\"


class Data:
    """Random values for an Arrow type: `array(type, n)` (seeded, so a failing example
    replays)."""

    def __init__(self, seed: int, null_share: float) -> None:
        self.rng = np.random.default_rng(seed)
        self.py = random.Random(seed)
        self.null_share = null_share

    def mask(self, n: int) -> np.ndarray | None:
        if self.null_share == 0:
            return None
        return self.rng.random(n) < self.null_share

    def ints(self, low: int, high: int, n: int, dtype: Any = np.int64) -> np.ndarray:
        """Integers in [low, high], the bounds themselves more often than chance."""
        values = self.rng.integers(low, high, n, endpoint=True, dtype=dtype)
        if n:
            edges = np.array([low, high, 0 if low <= 0 <= high else low], dtype=dtype)
            pick = self.rng.random(n) < 0.05
            values[pick] = self.rng.choice(edges, int(pick.sum()))
        return values

    def text(self) -> str:
        length = self.py.choice([0, 1, 5, 12, 13, 30])
        return "".join(self.py.choice(TEXT) for _ in range(length))

    def array(self, kind: pa.DataType, n: int) -> pa.Array:
        mask = self.mask(n)
        mask_array = pa.array(mask) if mask is not None else None

        def listed(make: Callable[[], Any]) -> list[Any]:
            nulls = mask if mask is not None else np.zeros(n, dtype=bool)
            return [None if null else make() for null in nulls]

        def view(values: np.ndarray, storage: pa.DataType) -> pa.Array:
            return pa.array(values, storage, mask=mask).view(kind)

        if pa.types.is_null(kind):
            return pa.nulls(n)
        if pa.types.is_boolean(kind):
            return pa.array(self.rng.random(n) < 0.5, mask=mask)
        if pa.types.is_integer(kind):
            dtype = np.dtype(kind.to_pandas_dtype())
            info = np.iinfo(dtype)
            return pa.array(self.ints(int(info.min), int(info.max), n, dtype), kind, mask=mask)
        if pa.types.is_floating(kind):
            values = self.rng.standard_normal(n) * 10.0 ** self.rng.integers(-5, 6, n)
            specials = np.array([np.inf, -np.inf, -0.0, 0.0])
            pick = self.rng.random(n) < 0.05
            values[pick] = self.rng.choice(specials, int(pick.sum()))
            dtype = {16: np.float16, 32: np.float32, 64: np.float64}[kind.bit_width]
            with np.errstate(over="ignore"):  # too large for float16: infinity, on purpose
                values = values.astype(dtype)
            return pa.array(values, kind, mask=mask)
        if pa.types.is_decimal(kind):
            largest = 10**kind.precision - 1
            return pa.array(
                listed(
                    lambda: decimal.Decimal(self.py.randint(-largest, largest)).scaleb(-kind.scale)
                ),
                kind,
            )
        if kind == pa.uuid():
            storage = pa.array(listed(lambda: self.py.randbytes(16)), pa.binary(16))
            return pa.ExtensionArray.from_storage(kind, storage)
        if pa.types.is_fixed_size_binary(kind):
            return pa.array(listed(lambda: self.py.randbytes(kind.byte_width)), kind)
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or kind == pa.string_view():
            return pa.array(listed(self.text), kind)
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or kind == pa.binary_view():
            return pa.array(listed(lambda: self.py.randbytes(self.py.choice([0, 3, 12, 40]))), kind)
        if pa.types.is_date32(kind):
            return view(self.ints(-719_162, 2_932_896, n).astype(np.int32), pa.int32())
        if pa.types.is_date64(kind):
            days = self.ints(-719_162, 2_932_896, n) * 86_400_000
            # Date64 should hold whole days; odd milliseconds are truncated towards zero.
            odd = self.rng.random(n) < 0.1
            days[odd] += self.rng.integers(-86_399_999, 86_399_999, int(odd.sum()))
            days = np.clip(days, MIN_MICROS // 1000 + 86_400_000, MAX_MICROS // 1000)
            return view(days, pa.int64())
        if pa.types.is_time32(kind) or pa.types.is_time64(kind):
            per_day = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000}.get(
                kind.unit, 86_400_000_000_000
            )
            values = self.ints(0, per_day - 1, n)
            storage = pa.int32() if pa.types.is_time32(kind) else pa.int64()
            return view(values.astype(storage.to_pandas_dtype()), storage)
        if pa.types.is_timestamp(kind):
            scale = {"s": 1_000_000, "ms": 1_000, "us": 1}.get(kind.unit)
            if scale is None:  # ns: all of int64 is 1677..2262
                values = self.ints(-(2**62), 2**62, n)
            else:
                values = self.ints(MIN_MICROS // scale + 1, MAX_MICROS // scale, n)
            return view(values, pa.int64())
        if pa.types.is_duration(kind):
            bound = {"s": 10**11, "ms": 10**14, "us": 10**17}.get(kind.unit, 2**62)
            return view(self.ints(-bound, bound, n), pa.int64())
        if kind == pa.month_day_nano_interval():
            return pa.array(
                listed(
                    lambda: (
                        self.py.randint(-1000, 1000),
                        self.py.randint(-10_000, 10_000),
                        self.py.randint(-(10**15), 10**15),
                    )
                ),
                kind,
            )
        if pa.types.is_dictionary(kind):
            size = int(self.rng.integers(1, 8))
            values = Data(int(self.rng.integers(2**32)), 0.2).array(kind.value_type, size)
            index_dtype = np.dtype(kind.index_type.to_pandas_dtype())
            indices = pa.array(
                self.rng.integers(0, size, n).astype(index_dtype), kind.index_type, mask=mask
            )
            return pa.DictionaryArray.from_arrays(indices, values)
        if pa.types.is_struct(kind):
            children = [self.array(field.type, n) for field in kind]
            return pa.StructArray.from_arrays(children, fields=list(kind), mask=mask_array)
        if pa.types.is_fixed_size_list(kind):
            values = self.array(kind.value_type, n * kind.list_size)
            return pa.FixedSizeListArray.from_arrays(values, type=kind, mask=mask_array)
        if pa.types.is_list(kind) or pa.types.is_large_list(kind):
            # NULL rows may still span elements: Arrow allows it, readers must skip them.
            offsets = np.concatenate([[0], np.cumsum(self.rng.integers(0, 4, n))])
            values = self.array(kind.value_type, int(offsets[-1]))
            builder = pa.ListArray if pa.types.is_list(kind) else pa.LargeListArray
            offset_type = pa.int32() if pa.types.is_list(kind) else pa.int64()
            return builder.from_arrays(
                pa.array(offsets, offset_type), values, type=kind, mask=mask_array
            )
        if pa.types.is_map(kind):
            lengths = self.rng.integers(0, 4, n)
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
            # Keys unique within a row.
            picks = [self.py.sample(range(8), int(length)) for length in lengths]
            flat = [key for row in picks for key in row]
            key_type = kind.key_type
            if pa.types.is_string(key_type):
                keys = pa.array([f"k{key}" for key in flat], key_type)
            elif pa.types.is_binary(key_type):
                keys = pa.array([bytes([key]) for key in flat], key_type)
            else:
                keys = pa.array(flat, key_type)
            items = self.array(kind.item_type, len(flat))
            return pa.MapArray.from_arrays(
                pa.array(offsets), keys, items, type=kind, mask=mask_array
            )
        if pa.types.is_union(kind):
            codes = list(kind.type_codes)
            selected = self.rng.choice(codes, n).astype(np.int8)
            fields = list(kind)
            names = [field.name for field in fields]
            if kind.mode == "sparse":
                children = [self.array(field.type, n) for field in fields]
                return pa.UnionArray.from_sparse(
                    pa.array(selected, pa.int8()), children, names, codes
                )
            offsets = np.zeros(n, dtype=np.int32)
            children = []
            for code, field in zip(codes, fields, strict=True):
                rows = selected == code
                offsets[rows] = np.arange(int(rows.sum()))
                # A spare element or two that no row selects.
                spare = int(self.rng.integers(0, 3))
                children.append(self.array(field.type, int(rows.sum()) + spare))
            return pa.UnionArray.from_dense(
                pa.array(selected, pa.int8()), pa.array(offsets), children, names, codes
            )
        raise AssertionError(f"no data for {kind}")


# Row counts by size class; the first is where a failure shrinks to.
ROW_COUNTS = {
    "some": (11, 500),
    "several chunks": (CHUNK + 4, 5000),
    "about a chunk": (CHUNK - 3, CHUNK + 3),
    "few": (1, 10),
    "none": (0, 0),
}


@st.composite
def tables(draw: st.DrawFn) -> tuple[pa.Table, int | None]:
    """A random table, already sliced, and the record batch size to write it in."""
    kinds = draw(st.lists(arrow_types(3), min_size=1, max_size=4))
    seed = draw(st.integers(0, 2**32 - 1))
    data = Data(seed, draw(st.sampled_from([0.0, 0.1, 0.5, 1.0])))
    # Sizes come from the seed: hypothesis would favour 0 rows, and the interesting cases are
    # several chunks and a slice starting anywhere.
    low, high = ROW_COUNTS[draw(st.sampled_from(list(ROW_COUNTS)))]
    rows = int(data.rng.integers(low, high, endpoint=True))
    start = int(data.rng.integers(0, 70, endpoint=True))
    columns = [data.array(kind, start + rows) for kind in kinds]
    table = pa.table(columns, names=[f"c{i}" for i in range(len(columns))])
    batch_rows = draw(st.sampled_from([None, 1, 777, CHUNK, 3000]))
    if batch_rows == 1:
        batch_rows = None if rows > 50 else 1
    return table.slice(start, rows), batch_rows


# The property: for any Arrow data, kafkars and DuckDB's reader agree on types and values.
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(tables())
def test_writer_matches_duckdb_reader(
    db: duckdb.DuckDBPyConnection, drawn: tuple[pa.Table, int | None]
) -> None:
    table, batch_rows = drawn
    mine_types, mine = through_kafkars(db, ipc_stream(table, batch_rows))
    their_types, theirs = through_duckdb(db, readable_table(table))
    assert mine_types == their_types
    assert_same(mine, theirs)


# --- each type, by example -------------------------------------------------------------------

UUIDS = [uuid.UUID(int=1).bytes, uuid.UUID(int=2**127 + 5).bytes, None, uuid.uuid4().bytes]
TZ = "UTC"


def examples() -> list[tuple[str, pa.Array, str]]:
    """(name, array, the DuckDB type kafkars gives it)."""
    ints = [1, None, -3]
    return [
        ("null", pa.nulls(3), '"NULL"'),
        ("bool", pa.array([True, None, False]), "BOOLEAN"),
        ("int8", pa.array([-128, None, 127], pa.int8()), "TINYINT"),
        ("int16", pa.array(ints, pa.int16()), "SMALLINT"),
        ("int32", pa.array(ints, pa.int32()), "INTEGER"),
        ("int64", pa.array([-(2**63), None, 2**63 - 1], pa.int64()), "BIGINT"),
        ("uint8", pa.array([0, None, 255], pa.uint8()), "UTINYINT"),
        ("uint16", pa.array([0, None, 65535], pa.uint16()), "USMALLINT"),
        ("uint32", pa.array([0, None, 2**32 - 1], pa.uint32()), "UINTEGER"),
        ("uint64", pa.array([0, None, 2**64 - 1], pa.uint64()), "UBIGINT"),
        ("float16", pa.array(np.array([1.5, 0, -65504], np.float16)), "FLOAT"),
        ("float32", pa.array([1.5, None, -0.0], pa.float32()), "FLOAT"),
        ("float64", pa.array([1.5, None, math.inf], pa.float64()), "DOUBLE"),
        ("utf8", pa.array(["a", None, "longer than twelve bytes é"]), "VARCHAR"),
        ("large_utf8", pa.array(["a", None, ""], pa.large_string()), "VARCHAR"),
        ("utf8_view", pa.array(["a", None, "x" * 40], pa.string_view()), "VARCHAR"),
        ("binary", pa.array([b"\x00\xff", None, b""]), "BLOB"),
        ("large_binary", pa.array([b"a", None, b"b"], pa.large_binary()), "BLOB"),
        ("binary_view", pa.array([b"a", None, b"b" * 30], pa.binary_view()), "BLOB"),
        ("fixed_binary", pa.array([b"abc", None, b"xyz"], pa.binary(3)), "BLOB"),
        ("fixed_binary_16", pa.array(UUIDS, pa.binary(16)), "BLOB"),
        ("uuid", pa.ExtensionArray.from_storage(pa.uuid(), pa.array(UUIDS, pa.binary(16))), "UUID"),
        ("date32", pa.array([0, None, -1], pa.date32()), "DATE"),
        ("date64", pa.array([86_400_000, None, -1], pa.date64()), "DATE"),
        ("time32_s", pa.array([0, None, 86_399], pa.time32("s")), "TIME"),
        ("time32_ms", pa.array([1, None, 86_399_999], pa.time32("ms")), "TIME"),
        ("time64_us", pa.array([1, None, 86_399_999_999], pa.time64("us")), "TIME"),
        ("time64_ns", pa.array([1_999, None, 86_399_999_999_999], pa.time64("ns")), "TIME"),
        ("timestamp_s", pa.array([-1, None, 1], pa.timestamp("s")), "TIMESTAMP"),
        ("timestamp_ms", pa.array([-1_001, None, 1], pa.timestamp("ms")), "TIMESTAMP"),
        ("timestamp_us", pa.array([-1, None, 1], pa.timestamp("us")), "TIMESTAMP"),
        ("timestamp_ns", pa.array([-1_001, None, 1], pa.timestamp("ns")), "TIMESTAMP_NS"),
        (
            "timestamp_s_tz",
            pa.array([-1, None, 1], pa.timestamp("s", TZ)),
            "TIMESTAMP WITH TIME ZONE",
        ),
        (
            "timestamp_ms_tz",
            pa.array([-1, None, 1], pa.timestamp("ms", TZ)),
            "TIMESTAMP WITH TIME ZONE",
        ),
        (
            "timestamp_us_tz",
            pa.array([-1, None, 1], pa.timestamp("us", "+05:30")),
            "TIMESTAMP WITH TIME ZONE",
        ),
        (
            "timestamp_ns_tz",
            pa.array([-1_001, None, 1_999], pa.timestamp("ns", TZ)),
            "TIMESTAMP WITH TIME ZONE",
        ),
        (
            "decimal32",
            pa.array(
                [decimal.Decimal("-1.23"), None, decimal.Decimal("99.99")], pa.decimal32(4, 2)
            ),
            "DECIMAL(4,2)",
        ),
        (
            "decimal64",
            pa.array(
                [decimal.Decimal("-1.23"), None, decimal.Decimal("1e10")], pa.decimal64(14, 2)
            ),
            "DECIMAL(14,2)",
        ),
        (
            "decimal128_narrow",
            pa.array([decimal.Decimal("-1.2"), None, decimal.Decimal("9.9")], pa.decimal128(2, 1)),
            "DECIMAL(2,1)",
        ),
        (
            "decimal128",
            pa.array(
                [decimal.Decimal("-1.23"), None, decimal.Decimal("9" * 36 + ".99")],
                pa.decimal128(38, 2),
            ),
            "DECIMAL(38,2)",
        ),
        (
            "decimal256",
            pa.array(
                [decimal.Decimal("-1.23"), None, decimal.Decimal("9" * 36 + ".99")],
                pa.decimal256(38, 2),
            ),
            "DECIMAL(38,2)",
        ),
        (
            "decimal256_narrow",
            pa.array(
                [decimal.Decimal("-1.5"), None, decimal.Decimal("12345.6")], pa.decimal256(9, 1)
            ),
            "DECIMAL(9,1)",
        ),
        ("duration_s", pa.array([-1, None, 86_401], pa.duration("s")), "INTERVAL"),
        ("duration_ms", pa.array([-1, None, 1], pa.duration("ms")), "INTERVAL"),
        ("duration_us", pa.array([-1, None, 1], pa.duration("us")), "INTERVAL"),
        ("duration_ns", pa.array([-1_999, None, 1_999], pa.duration("ns")), "INTERVAL"),
        (
            "interval_mdn",
            pa.array([(1, 2, 3_500), None, (-1, 0, -1_500)], pa.month_day_nano_interval()),
            "INTERVAL",
        ),
        ("dictionary", pa.array(["a", "b", None, "a"]).dictionary_encode(), "VARCHAR"),
        (
            "dictionary_ints",
            pa.DictionaryArray.from_arrays(pa.array([1, None, 0], pa.uint8()), pa.array([7, None])),
            "BIGINT",
        ),
        (
            "struct",
            pa.array(
                [{"x": 1, "y": "a"}, None, {"x": None, "y": None}],
                pa.struct([("x", pa.int32()), ("y", pa.string())]),
            ),
            "STRUCT(x INTEGER, y VARCHAR)",
        ),
        ("list", pa.array([[1, None], None, []], pa.list_(pa.int32())), "INTEGER[]"),
        ("large_list", pa.array([[1, None], None, []], pa.large_list(pa.int32())), "INTEGER[]"),
        (
            "fixed_size_list",
            pa.array([[1, None], None, [3, 4]], pa.list_(pa.int32(), 2)),
            "INTEGER[]",
        ),
        (
            "list_of_lists",
            pa.array([[[1], None, []], None, [[2, 3]]], pa.list_(pa.list_(pa.int8()))),
            "TINYINT[][]",
        ),
        (
            "map",
            pa.array([[("a", 1), ("b", None)], None, []], pa.map_(pa.string(), pa.int32())),
            "MAP(VARCHAR, INTEGER)",
        ),
        (
            "sparse_union",
            pa.UnionArray.from_sparse(
                pa.array([0, 1, 0], pa.int8()),
                [pa.array([1, None, None], pa.int32()), pa.array(["a", "b", None])],
                ["i", "s"],
            ),
            "UNION(i INTEGER, s VARCHAR)",
        ),
        (
            "sparse_union_codes",
            pa.UnionArray.from_sparse(
                pa.array([9, 4, 9], pa.int8()),
                [pa.array([1, None, 3], pa.int32()), pa.array(["a", "b", None])],
                ["i", "s"],
                [9, 4],
            ),
            "UNION(i INTEGER, s VARCHAR)",
        ),
        (
            "dense_union",
            pa.UnionArray.from_dense(
                pa.array([1, 0, 1, 0], pa.int8()),
                pa.array([0, 1, 1, 0], pa.int32()),
                [pa.array([5, None], pa.int32()), pa.array(["a", "b"])],
                ["i", "s"],
            ),
            "UNION(i INTEGER, s VARCHAR)",
        ),
        (
            "union_of_struct",
            pa.UnionArray.from_sparse(
                pa.array([0, 1], pa.int8()),
                [pa.array([{"a": 1}, {"a": 2}]), pa.array([None, 2.5])],
                ["st", "d"],
            ),
            "UNION(st STRUCT(a BIGINT), d DOUBLE)",
        ),
        (
            "list_of_unions",
            pa.ListArray.from_arrays(
                pa.array([0, 2, 3], pa.int32()),
                pa.UnionArray.from_dense(
                    pa.array([0, 1, 0], pa.int8()),
                    pa.array([0, 0, 1], pa.int32()),
                    [pa.array([1, 2], pa.int32()), pa.array(["x"])],
                    ["i", "s"],
                ),
            ),
            "UNION(i INTEGER, s VARCHAR)[]",
        ),
    ]


EXAMPLES = examples()


# Each type's DuckDB type is the one documented, and its values are DuckDB's own reading.
@pytest.mark.parametrize(
    ("array", "expected"), [(a, t) for _, a, t in EXAMPLES], ids=[n for n, _, _ in EXAMPLES]
)
def test_type_and_values(db: duckdb.DuckDBPyConnection, array: pa.Array, expected: str) -> None:
    table = pa.table({"c": array})
    types, mine = through_kafkars(db, ipc_stream(table))
    assert types == [expected]
    their_types, theirs = through_duckdb(db, readable_table(table))
    assert their_types == [expected]
    assert_same(mine, theirs)


def query(db: duckdb.DuckDBPyConnection, sql: str, table: pa.Table) -> list[tuple[Any, ...]]:
    return db.execute(sql.replace("{t}", "kafkars_arrow_ipc(?)"), [ipc_stream(table)]).fetchall()


# Conversions truncate towards zero, as DuckDB's own casts do.
def test_sub_microsecond_values_truncate(db: duckdb.DuckDBPyConnection) -> None:
    table = pa.table(
        {
            "ts": pa.array([-1_001, 1_999], pa.timestamp("ns", TZ)),
            "t": pa.array([1_999, 86_399_999_999_999], pa.time64("ns")),
            "d": pa.array([-1_999, 1_999], pa.duration("ns")),
            "i": pa.array([(0, 0, -1_999), (0, 0, 1_999)], pa.month_day_nano_interval()),
            "day": pa.array([-1, 86_400_000 * 2 - 1], pa.date64()),
        }
    )
    rows = query(db, "SELECT epoch_us(ts), t, d, i, day FROM {t}", table)
    us = datetime.timedelta(microseconds=1)
    assert rows == [
        (-1, datetime.time(0, 0, 0, 1), -us, -us, datetime.date(1970, 1, 1)),
        (1, datetime.time(23, 59, 59, 999_999), us, us, datetime.date(1970, 1, 2)),
    ]


# TIMESTAMP_NS keeps nanoseconds.
def test_timestamp_ns_keeps_nanoseconds(db: duckdb.DuckDBPyConnection) -> None:
    table = pa.table({"ts": pa.array([-1_001, 1_999], pa.timestamp("ns"))})
    assert query(db, "SELECT epoch_ns(ts) FROM {t}", table) == [(-1_001,), (1_999,)]


# Floats keep NaN, infinities and the sign of zero.
def test_special_floats(db: duckdb.DuckDBPyConnection) -> None:
    values = [math.nan, math.inf, -math.inf, -0.0]
    table = pa.table(
        {
            "f64": pa.array(values),
            "f32": pa.array(values, pa.float32()),
            "f16": pa.array(np.array(values, np.float16)),
        }
    )
    for row, expected in zip(query(db, "SELECT * FROM {t}", table), values, strict=True):
        for value in row:
            if math.isnan(expected):
                assert math.isnan(value)
            else:
                assert value == expected
                assert math.copysign(1, value) == math.copysign(1, expected)


# Arrow's day-time and year-month intervals (pyarrow cannot hold them; nanoarrow writes them).
# DuckDB 2.0's own reader takes a day-time interval for 64-bit milliseconds, so it is no
# reference here: the expected values are written out.
def test_day_time_and_year_month_intervals(db: duckdb.DuckDBPyConnection) -> None:
    day_time = np.array([(1, 1_500), (-2, -3), (0, 0)], dtype=[("days", "<i4"), ("ms", "<i4")])
    validity = nanoarrow.c_buffer([True, True, False], nanoarrow.bool_())
    columns = {
        "dt": nanoarrow.c_array_from_buffers(
            nanoarrow.interval_day_time(), 3, [validity, day_time.tobytes()]
        ),
        "ym": nanoarrow.c_array_from_buffers(
            nanoarrow.interval_months(), 3, [None, np.array([1, -14, 0], "<i4").tobytes()]
        ),
    }
    batch = nanoarrow.c_array_from_buffers(
        nanoarrow.struct({name: array.schema for name, array in columns.items()}),
        3,
        [None],
        children=list(columns.values()),
    )
    out = io.BytesIO()
    with nanoarrow.ipc.StreamWriter.from_writable(out) as writer:
        writer.write_stream(batch)
    blob = out.getvalue()
    rows = db.execute(
        "SELECT dt, ym, typeof(dt), typeof(ym) FROM kafkars_arrow_ipc(?)", [blob]
    ).fetchall()
    days, ms = datetime.timedelta(days=1), datetime.timedelta(milliseconds=1)
    assert rows == [
        (days + 1_500 * ms, datetime.timedelta(days=30), "INTERVAL", "INTERVAL"),
        (-2 * days - 3 * ms, datetime.timedelta(days=-420), "INTERVAL", "INTERVAL"),
        (None, datetime.timedelta(0), "INTERVAL", "INTERVAL"),
    ]
    parts = db.execute(
        "SELECT datepart('month', ym), datepart('year', ym) FROM kafkars_arrow_ipc(?)", [blob]
    ).fetchall()
    assert parts == [(1, 0), (-2, -1), (0, 0)]


# A NULL struct row is NULL all the way down, whatever its fields hold.
def test_null_struct_nulls_its_fields(db: duckdb.DuckDBPyConnection) -> None:
    inner = pa.StructArray.from_arrays(
        [pa.array([1, 2]), pa.array([[1], [2]])], names=["x", "xs"], mask=pa.array([False, True])
    )
    outer = pa.StructArray.from_arrays([inner], names=["in"], mask=pa.array([False, True]))
    table = pa.table({"s": outer, "t": inner})
    rows = query(db, 'SELECT s."in".x, s."in".xs, t.x, t.xs, s IS NULL FROM {t}', table)
    assert rows == [(1, [1], 1, [1], False), (None, None, None, None, True)]


# A union row is NULL when its member's value is, and so is its tag; other members are NULL.
def test_union_nulls(db: duckdb.DuckDBPyConnection) -> None:
    union = pa.UnionArray.from_sparse(
        pa.array([0, 1, 0], pa.int8()),
        [pa.array([1, 7, None], pa.int32()), pa.array(["a", "b", "c"])],
        ["i", "s"],
    )
    rows = query(
        db,
        "SELECT u IS NULL, union_tag(u), union_extract(u, 'i'), union_extract(u, 's') FROM {t}",
        pa.table({"u": union}),
    )
    assert rows == [(False, "i", 1, None), (False, "s", None, "b"), (True, None, None, None)]


# Lists and maps whose NULL rows still span elements skip those elements.
def test_null_lists_skip_their_elements(db: duckdb.DuckDBPyConnection) -> None:
    offsets = pa.array([0, 2, 5, 6], pa.int32())
    lists = pa.ListArray.from_arrays(
        offsets, pa.array(range(6)), mask=pa.array([False, True, False])
    )
    maps = pa.MapArray.from_arrays(
        offsets, pa.array(list("abcdef")), pa.array(range(6)), mask=pa.array([False, True, False])
    )
    rows = query(db, "SELECT l, m FROM {t}", pa.table({"l": lists, "m": maps}))
    assert rows == [([0, 1], {"a": 0, "b": 1}), (None, None), ([5], {"f": 5})]


# Several record batches and chunks: every row, once, in order; projections and count(*).
def test_chunks_batches_and_projection(db: duckdb.DuckDBPyConnection) -> None:
    n = 3 * CHUNK + 5
    table = pa.table(
        {
            "i": pa.array(range(n), pa.int64()),
            "s": pa.array([f"row {i}" if i % 7 else None for i in range(n)]),
            "l": pa.array([[i] * (i % 3) for i in range(n)], pa.list_(pa.int64())),
        }
    )
    for batch_rows in (None, 1_000, CHUNK, 5_000):
        blob = ipc_stream(table, batch_rows)
        rows = db.execute("SELECT i, s, l FROM kafkars_arrow_ipc(?)", [blob]).fetchall()
        assert rows == rows_of(table)
        assert db.execute("SELECT count(*) FROM kafkars_arrow_ipc(?)", [blob]).fetchone() == (n,)
        only = db.execute("SELECT sum(len(l)) FROM kafkars_arrow_ipc(?)", [blob]).fetchone()
        assert only == (sum(i % 3 for i in range(n)),)


# An empty stream (a schema, no batches) has the columns and no rows.
def test_empty_stream(db: duckdb.DuckDBPyConnection) -> None:
    table = pa.table({"a": pa.array([], pa.int32()), "b": pa.array([], pa.string())})
    blob = ipc_stream(table)
    assert db.execute("SELECT * FROM kafkars_arrow_ipc(?)", [blob]).fetchall() == []
    columns = db.execute("DESCRIBE SELECT * FROM kafkars_arrow_ipc(?)", [blob]).fetchall()
    assert [(c[0], c[1]) for c in columns] == [("a", "INTEGER"), ("b", "VARCHAR")]


# Columns keep the schema's names, repeated or empty ones told apart as DuckDB's reader does.
def test_column_names(db: duckdb.DuckDBPyConnection) -> None:
    names = ["a b", "x", "X", "", "x_1"]
    table = pa.table([pa.array([i]) for i in range(len(names))], names=names)
    blob = ipc_stream(table)
    mine = db.execute("DESCRIBE SELECT * FROM kafkars_arrow_ipc(?)", [blob]).fetchall()
    theirs = db.from_arrow(table).columns
    assert [column[0] for column in mine] == theirs
    assert db.execute('SELECT "a b" FROM kafkars_arrow_ipc(?)', [blob]).fetchall() == [(0,)]


# --- errors ---------------------------------------------------------------------------------


def refused(db: duckdb.DuckDBPyConnection, blob: bytes | None) -> str:
    with pytest.raises(duckdb.Error) as error:
        db.execute("SELECT * FROM kafkars_arrow_ipc(?)", [blob]).fetchall()
    return str(error.value)


# Bytes that are no IPC stream are refused, naming the function.
@pytest.mark.parametrize("blob", [b"", b"not arrow at all", b"\xff\xff\xff\xff\x10\x00\x00\x00"])
def test_error_not_a_stream(db: duckdb.DuckDBPyConnection, blob: bytes) -> None:
    message = refused(db, blob)
    assert "Binder Error" in message
    assert "kafkars_arrow_ipc: data is not an Arrow IPC stream" in message


# An Arrow IPC *file* is not a stream.
def test_error_ipc_file(db: duckdb.DuckDBPyConnection) -> None:
    sink = io.BytesIO()
    table = pa.table({"a": [1]})
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    assert "data is not an Arrow IPC stream" in refused(db, sink.getvalue())


# NULL data is refused.
def test_error_null(db: duckdb.DuckDBPyConnection) -> None:
    assert "kafkars_arrow_ipc: data is NULL" in refused(db, None)


# A stream cut short after its schema fails when the batches are read.
def test_error_truncated(db: duckdb.DuckDBPyConnection) -> None:
    blob = ipc_stream(pa.table({"a": pa.array(range(100))}))
    message = refused(db, blob[: len(blob) - 300])
    assert "kafkars_arrow_ipc: reading the stream's record batches" in message


# A type without a DuckDB type is refused at bind, naming the column's path and why.
@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (
            pa.field(
                "value",
                pa.struct(
                    [pa.field("items", pa.list_(pa.struct([("price", pa.decimal256(60, 2))])))]
                ),
            ),
            "column value.items.price: Decimal256(60, 2) has no DuckDB type "
            "(DECIMAL precision is at most 38)",
        ),
        (
            pa.field("d", pa.decimal128(5, -2)),
            "column d: Decimal128(5, -2) has no DuckDB type (DECIMAL scale cannot be negative)",
        ),
        (
            pa.field("s", pa.struct([])),
            "column s: Struct() has no DuckDB type (a STRUCT needs at least one field)",
        ),
        (
            pa.field("s", pa.struct([("id", pa.int8()), ("ID", pa.int8())])),
            "field names must be unique ignoring case; found 'id' and 'ID'",
        ),
        (
            pa.field("u", pa.sparse_union([pa.field("a", pa.int8()), pa.field("a", pa.string())])),
            "member names must be unique ignoring case",
        ),
        (pa.field("l", pa.list_view(pa.int8())), "column l: ListView"),
        (
            pa.field("r", pa.run_end_encoded(pa.int32(), pa.string())),
            "run-end encoding is not supported",
        ),
        (pa.field("m", pa.map_(pa.list_(pa.int8()), pa.int8())), "column m: Map"),
    ],
    ids=[
        "decimal256_60",
        "negative_scale",
        "empty_struct",
        "names_differ_in_case",
        "union_names",
        "list_view",
        "run_end_encoded",
        "list_map_keys",
    ],
)
def test_error_unsupported_type(
    db: duckdb.DuckDBPyConnection, field: pa.Field, expected: str
) -> None:
    table = pa.table([pa.nulls(1, field.type)], schema=pa.schema([field]))
    message = refused(db, ipc_stream(table))
    assert "Binder Error" in message
    assert "kafkars_arrow_ipc: " in message
    assert expected in message


# MAP keys must be unique per row (DuckDB's MAP guarantees it), and non-NULL.
def test_error_map_key_repeated(db: duckdb.DuckDBPyConnection) -> None:
    many = [f"k{i}" for i in range(20)]
    for keys in (["a", "b", "a"], [*many, "k3"]):
        maps = pa.MapArray.from_arrays(
            pa.array([0, 1, 1 + len(keys)], pa.int32()),
            pa.array(["x", *keys]),
            pa.array(range(1 + len(keys))),
        )
        message = refused(db, ipc_stream(pa.table({"m": maps})))
        assert "Invalid Input Error" in message
        assert "kafkars_arrow_ipc: column m.key: MAP keys must be unique" in message


# A NULL MAP key never reaches DuckDB: Arrow forbids it, and the stream is refused when read
# (pyarrow cannot even build one; nanoarrow can, unvalidated).
def test_error_map_key_null(db: duckdb.DuckDBPyConnection) -> None:
    keys = nanoarrow.c_array(["a", None], nanoarrow.string())
    entries = nanoarrow.c_array_from_buffers(
        nanoarrow.struct({"key": nanoarrow.string(nullable=False), "value": nanoarrow.int64()}),
        2,
        [None],
        children=[keys, nanoarrow.c_array([1, 2], nanoarrow.int64())],
        validation_level="none",
    )
    maps = nanoarrow.c_array_from_buffers(
        nanoarrow.map_(nanoarrow.string(), nanoarrow.int64()),
        1,
        [None, np.array([0, 2], "<i4").tobytes()],
        children=[entries],
        validation_level="none",
    )
    batch = nanoarrow.c_array_from_buffers(
        nanoarrow.struct({"m": maps.schema}), 1, [None], children=[maps], validation_level="none"
    )
    out = io.BytesIO()
    with nanoarrow.ipc.StreamWriter.from_writable(out) as writer:
        writer.write_stream(batch)
    message = refused(db, out.getvalue())
    assert "kafkars_arrow_ipc: reading the stream's record batches" in message
    assert '"key"' in message


# A timestamp beyond DuckDB's range is an error naming the column, not a wrapped value.
def test_error_timestamp_out_of_range(db: duckdb.DuckDBPyConnection) -> None:
    table = pa.table({"ts": pa.array([0, 10**15], pa.timestamp("s"))})
    message = refused(db, ipc_stream(table))
    assert (
        "kafkars_arrow_ipc: column ts: 1000000000000000 s is out of range for DuckDB's TIMESTAMP"
        in message
    )
    duration = pa.table({"d": pa.array([None, -(10**15)], pa.duration("s"))})
    assert "column d: -1000000000000000 s (a duration) is out of range" in refused(
        db, ipc_stream(duration)
    )


# A decimal value wider than its storage (Arrow does not check precision) is an error.
def test_error_decimal_too_wide(db: duckdb.DuckDBPyConnection) -> None:
    wide = (99_999).to_bytes(16, "little", signed=True)
    array = pa.Array.from_buffers(pa.decimal128(4, 0), 1, [None, pa.py_buffer(wide)])
    message = refused(db, ipc_stream(pa.table({"d": array})))
    assert "column d: the unscaled decimal value 99999 does not fit DECIMAL(4)" in message


# After an error the connection stays usable.
def test_connection_usable_after_errors(db: duckdb.DuckDBPyConnection) -> None:
    refused(db, b"junk")
    blob = ipc_stream(pa.table({"a": [1, 2]}))
    assert db.execute("SELECT sum(a) FROM kafkars_arrow_ipc(?)", [blob]).fetchone() == (3,)
