"""Checks that Polars, DuckDB and pandas read every ledger table the way
`faceblock sql` does, using the very snippets of the README's "For analysts"
section (they are extracted from README.md and run, so a README snippet that
stops working fails this check).

    python notebooks/check_readers.py STORE FACEBLOCK_BIN [--hidden-epoch E] [--readme FILE]

For every table `faceblock sql "SHOW TABLES"` lists, each reader's rows
(Polars `read_delta` and `scan_delta`, DuckDB over the deltalake package's
Arrow dataset, pandas through deltalake's `to_pandas`), all joined through
`epochs`, must equal `faceblock sql --format csv "SELECT * FROM <table>"`
row for row after sorting. The views `weights_in_force` and `bonds_in_force`
are compared the same way against the README's functions of the same name
(Polars, pandas) and DuckDB views. Floats compare exactly: the CSV prints them with
ryu (shortest text that parses back to the same f64).

`--hidden-epoch E` is for a store where epoch E's other tables were committed
but its `epochs` row was not (a coordinator that died before its last
commit): a plain read (no join) must show E in every reader, the joined reads
must not, and `epochs` must not list it.

Exit status 0 when everything matches; 1 with a message naming the table,
the reader and the first differing row otherwise.
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import csv
import datetime as dt
import io
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
from deltalake import DeltaTable

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## For analysts"


class Mismatch(Exception):
    """A reader disagrees with `faceblock sql`."""


def readme_snippets(readme: Path) -> dict[str, str]:
    """The ```python blocks of the README's analysts section, by reader."""
    text = readme.read_text()
    start = text.find(SECTION)
    if start < 0:
        raise Mismatch(f"{readme} has no '{SECTION}' section")
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end > 0 else len(text)]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    out: dict[str, str] = {}
    for code in blocks:
        if "import duckdb" in code:
            key = "duckdb"
        elif "import polars" in code:
            key = "polars"
        elif "to_pandas" in code:
            key = "pandas"
        else:
            key = f"other{len(out)}"
        if key in out:
            raise Mismatch(f"two {key} snippets in the README's analysts section")
        out[key] = code
    missing = {"polars", "duckdb", "pandas"} - out.keys()
    if missing:
        raise Mismatch(f"the README's analysts section lacks a snippet for {sorted(missing)}")
    return out


def run_snippet(name: str, code: str, store: str) -> dict:
    """Runs one README snippet as a user would (FACEBLOCK_STORE set), its
    printed output discarded; returns its namespace."""
    os.environ["FACEBLOCK_STORE"] = store
    ns: dict = {"__name__": f"readme_{name}"}
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"README.md ({name} snippet)", "exec"), ns)
    except Exception as e:
        raise Mismatch(f"the README's {name} snippet fails: {type(e).__name__}: {e}") from e
    return ns


def faceblock_csv(bin_: str, store: str, sql: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of `faceblock --store STORE sql --format csv SQL`."""
    p = subprocess.run(
        [bin_, "--store", store, "sql", "--format", "csv", sql],
        capture_output=True,
        text=True,
    )
    if p.returncode != 0:
        raise Mismatch(f"faceblock sql {sql!r} exited {p.returncode}: {p.stderr.strip()}")
    rows = list(csv.reader(io.StringIO(p.stdout)))
    if not rows:
        raise Mismatch(f"faceblock sql {sql!r} printed no header")
    return rows[0], rows[1:]


def ledger_tables(bin_: str, store: str) -> list[str]:
    """The tables `faceblock sql` offers (its views over the Delta tables)."""
    header, rows = faceblock_csv(bin_, store, "SHOW TABLES")
    i_schema, i_name = header.index("table_schema"), header.index("table_name")
    return sorted(
        r[i_name] for r in rows if r[i_schema] == "public" and not r[i_name].startswith("_")
    )


# --- values -------------------------------------------------------------------------

# Views of `faceblock sql` over the tables (pipelines/sql/views/): no Delta
# table of their own; the README's snippets build them from the tables.
VIEWS = {"weights_in_force", "bonds_in_force"}

NULL = None
NAN = "NaN"  # a token: NaN != NaN would make equal rows differ


def kind_of(dtype: pl.DataType) -> str:
    if dtype.is_integer():
        return "int"
    if dtype.is_float():
        return "float"
    if isinstance(dtype, pl.Datetime):
        return "time"
    if dtype in (pl.String, pl.Utf8):
        return "str"
    if dtype == pl.Boolean:
        return "bool"
    raise Mismatch(f"no comparison rule for column type {dtype}")


def micros(t: dt.datetime) -> int:
    """Microseconds since 1970 for an aware datetime in any zone."""
    return calendar.timegm(t.utctimetuple()) * 1_000_000 + t.microsecond


def from_csv(cell: str, kind: str):
    """A CSV cell as a comparable value (arrow-csv prints NULL as an empty cell)."""
    if kind == "str":
        return cell  # NULL and "" both print as an empty cell
    if cell == "":
        return NULL
    if kind == "int":
        return int(cell)
    if kind == "float":
        v = float(cell)
        return NAN if math.isnan(v) else v
    if kind == "time":
        return micros(dt.datetime.fromisoformat(cell.replace("Z", "+00:00")))
    if kind == "bool":
        return cell == "true"
    raise AssertionError(kind)


def from_reader(v, kind: str):
    """A value a reader returned, as a comparable value."""
    if v is None or (kind == "str" and isinstance(v, float) and math.isnan(v)):
        return "" if kind == "str" else NULL
    if kind == "str":
        return str(v)
    if isinstance(v, float) and math.isnan(v):
        # pandas turns NULL in float and nullable-int columns into NaN
        return NAN if kind == "float" else NULL
    if kind == "int":
        if isinstance(v, float) and v != int(v):
            raise Mismatch(f"integer column holds {v}")
        return int(v)
    if kind == "float":
        return float(v)
    if kind == "time":
        if not isinstance(v, dt.datetime) or v.tzinfo is None:
            raise Mismatch(f"timestamp {v!r} has no time zone (the ledger's are UTC)")
        return micros(v)
    if kind == "bool":
        return bool(v)
    raise AssertionError(kind)


def sort_key(row: tuple):
    return tuple((x is None, x == NAN, "" if x is None or x == NAN else x) for x in row)


def pandas_view(row: tuple, kinds: list[str]) -> tuple:
    """A row as pandas can hold it: NaN and NULL are one value in float columns."""
    return tuple(NULL if (k == "float" and x == NAN) else x for x, k in zip(row, kinds))


def normalised(rows, kinds: list[str], pandas: bool = False) -> list[tuple]:
    """Rows as sorted tuples of comparable values."""
    out = [tuple(from_reader(v, k) for v, k in zip(r, kinds)) for r in rows]
    if pandas:
        out = [pandas_view(r, kinds) for r in out]
    return sorted(out, key=sort_key)


def compare(table: str, reader: str, got: list[tuple], want: list[tuple], columns: list[str]):
    if len(got) != len(want):
        extra = sorted({r[columns.index("epoch")] for r in got} ^ {r[columns.index("epoch")] for r in want}, key=str)
        raise Mismatch(
            f"{table}: {reader} read {len(got)} rows, faceblock sql {len(want)}"
            f" (epochs in one but not the other: {extra})"
        )
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            diff = [f"{c}: {a!r} != {b!r}" for c, a, b in zip(columns, g, w) if a != b]
            raise Mismatch(f"{table}: {reader} row {i} (sorted) differs from faceblock sql: {', '.join(diff)}")


# --- the readers ------------------------------------------------------------------


def reader_rows(snippets: dict[str, dict], table: str, columns: list[str]) -> dict[str, tuple[list, bool]]:
    """Each reader's rows for a table through the README snippets, columns in
    `faceblock sql`'s order; the flag says whether they came from pandas."""
    pol, duck, pan = snippets["polars"], snippets["duckdb"], snippets["pandas"]

    def cols(names: list[str], reader: str) -> None:
        if sorted(names) != sorted(columns):
            raise Mismatch(f"{table}: {reader} has columns {sorted(names)}, faceblock sql {sorted(columns)}")

    out: dict[str, tuple[list, bool]] = {}
    if table in VIEWS:
        # Views over the tables: each snippet defines a function of that name.
        for k, fns in {"polars": [table], "pandas": [table]}.items():
            if table not in snippets[k]:
                raise Mismatch(f"the README's {k} snippet must define `{table}()` (a view of faceblock sql)")
        lf = pol[table]()
        if not isinstance(lf, pl.LazyFrame):
            raise Mismatch(f"the README's polars {table}() must return a LazyFrame")
        df = lf.collect()
        cols(df.columns, "polars")
        out["polars"] = (df.select(columns).rows(), False)
    else:
        df = pol["read_ledger"](table)
        cols(df.columns, "polars read_delta")
        out["polars read_delta"] = (df.select(columns).rows(), False)
        lf = pol["scan_ledger"](table)
        if not isinstance(lf, pl.LazyFrame):
            raise Mismatch("the README's scan_ledger must return a LazyFrame (pl.scan_delta)")
        df = lf.collect()
        cols(df.columns, "polars scan_delta")
        out["polars scan_delta"] = (df.select(columns).rows(), False)
    con = duck["con"]
    try:
        rel = con.sql(f'SELECT * FROM "{table}"')
    except duckdb.Error as e:
        raise Mismatch(f"{table}: the README's DuckDB snippet does not offer this table: {e}") from e
    cols(rel.columns, "duckdb")
    sel = ", ".join(f'"{c}"' for c in columns)
    out["duckdb"] = (pl.from_arrow(con.sql(f'SELECT {sel} FROM "{table}"').to_arrow_table()).rows(), False)
    pdf = pan[table]() if table in VIEWS else pan["read_ledger"](table)
    cols(list(pdf.columns), "pandas")
    out["pandas"] = (list(pdf[columns].itertuples(index=False, name=None)), True)
    return out


def plain_epochs(store: str, table: str) -> dict[str, set[int]]:
    """The epochs each reader sees in a table without the join."""
    path = f"{store}/ledger/{table}"
    con = duckdb.connect()
    con.register("t", DeltaTable(path).to_pyarrow_dataset())
    return {
        "polars read_delta": set(pl.read_delta(path)["epoch"].to_list()),
        "polars scan_delta": set(pl.scan_delta(path).select("epoch").collect()["epoch"].to_list()),
        "duckdb": {r[0] for r in con.sql("SELECT DISTINCT epoch FROM t").fetchall()},
        "pandas": set(DeltaTable(path).to_pandas(columns=["epoch"])["epoch"].tolist()),
    }


def check(store: str, bin_: str, hidden: int | None, readme: Path = README) -> list[str]:
    """Runs every comparison; returns one line per table for the report."""
    code = readme_snippets(readme)
    snippets = {k: run_snippet(k, v, store) for k, v in code.items()}
    for k, fns in {"polars": ["read_ledger", "scan_ledger"], "pandas": ["read_ledger"], "duckdb": ["con"]}.items():
        for f in fns:
            if f not in snippets[k]:
                raise Mismatch(f"the README's {k} snippet must define `{f}` (the check calls it)")
    tables = ledger_tables(bin_, store)
    if "epochs" not in tables or "state" not in tables:
        raise Mismatch(f"faceblock sql lists {tables}: no epochs/state table")
    report = []
    for table in tables:
        columns, raw = faceblock_csv(bin_, store, f'SELECT * FROM "{table}"')
        if table in VIEWS:
            ref = snippets["polars"][table]().collect()
        else:
            ref = pl.read_delta(f"{store}/ledger/{table}")
        kinds = [kind_of(ref.schema[c]) for c in columns]
        want = sorted((tuple(from_csv(c, k) for c, k in zip(r, kinds)) for r in raw), key=sort_key)
        for reader, (rows, is_pandas) in reader_rows(snippets, table, columns).items():
            got = normalised(rows, kinds, pandas=is_pandas)
            expect = sorted((pandas_view(r, kinds) for r in want), key=sort_key) if is_pandas else want
            compare(table, reader, got, expect, columns)
        if table == "registry" and "registered_epoch" in columns:
            # The README's join rule for registry rests on this.
            i, j = columns.index("epoch"), columns.index("registered_epoch")
            odd = [r for r in want if r[i] != r[j]]
            if odd:
                raise Mismatch(f"registry rows whose epoch is not their registered_epoch: {odd[:3]}")
        epochs_seen = sorted({r[columns.index("epoch")] for r in want})
        readers = "3 readers" if table in VIEWS else "4 readers"
        line = f"{table}: {len(want)} rows, epochs {epochs_seen}, {readers} equal to faceblock sql"
        if hidden is not None and table not in VIEWS:
            plain = plain_epochs(store, table)
            if hidden in epochs_seen:
                raise Mismatch(f"{table}: faceblock sql shows uncommitted epoch {hidden}")
            shown = [r for r, e in plain.items() if hidden in e]
            if shown and len(shown) != len(plain):
                raise Mismatch(f"{table}: plain reads disagree on epoch {hidden}: only {shown} show it")
            if shown:
                line += f"; plain reads show epoch {hidden}, joined reads hide it"
        report.append(line)
        if table == "epochs" and not want:
            raise Mismatch("epochs is empty: nothing to compare (run an epoch first)")
    if hidden is not None:
        if hidden in set(pl.read_delta(f"{store}/ledger/epochs")["epoch"].to_list()):
            raise Mismatch(f"epoch {hidden} is in epochs: it is committed, not hidden")
        if hidden not in plain_epochs(store, "state")["polars read_delta"]:
            raise Mismatch(f"state has no rows for epoch {hidden}: nothing for the join to hide")
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store", help="a store directory (FACEBLOCK_STORE)")
    ap.add_argument("faceblock", help="the faceblock binary")
    ap.add_argument("--hidden-epoch", type=int, help="an epoch committed in every table but epochs")
    ap.add_argument("--readme", type=Path, default=README, help="take the snippets from this file")
    a = ap.parse_args()
    t0 = time.monotonic()
    try:
        lines = check(str(Path(a.store).resolve()), a.faceblock, a.hidden_epoch, a.readme)
    except Mismatch as e:
        print(f"reader check failed: {e}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    print(f"readers agree with faceblock sql on {len(lines)} tables ({time.monotonic() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
