"""Seeded shops of millions of order lines as Parquet, written block by block (issue 12).

``python -m playbook.dev.large_shop --lines 10000000 --into .bench/large-10M`` (``make bench-large``
builds the 1M and 10M shops through ``playbook.dev.bench --large``). See ``docs/benchmarks.md``.

A shop is ``n`` blocks. Block ``i`` is one draw of the sample-shop generator with its own seed,
``generate_shop(DEFAULT_SEED + i)``: 26 weeks, about 41,000 orders and 67,000 lines, 50,000
customers of its own, the planted facts and the three experiments. Its order, line, return,
contact and customer ids (in orders and in assignments) are suffixed ``-b<i>``, so the blocks are
disjoint groups of customers of one shop that share its calendar and its experiments (every
block assigns its own customers to both W46 experiments). ``generate_shop`` is called as it is,
so the sample shop (block 0 without the suffix) is untouched byte for byte.

Memory: a block is generated, appended to each table's Parquet file as row groups
(``pyarrow.parquet.ParquetWriter``) and dropped; only the day-level tables are carried over
blocks: sessions and marketing spend (one row per day x channel [x category], 5,824 and 728
rows) are summed over the blocks and written at the end, as one shop's traffic would be. Actions
and experiments are block 0's. The builder's peak resident memory is recorded in the manifest:
it stays that of one block whatever ``n`` is.

Rows are in time order within a block, not across blocks (the engine does not care; an export
usually is, which only changes how well the files compress).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from playbook.core.atomic import write_json
from playbook.data.contract import ALL_TABLES, TABLES
from playbook.dev.sample_data import DEFAULT_SEED, generate_shop

LARGE_VERSION = "1"  # bump when the blocks change: the cached shops are rebuilt
LINES_PER_BLOCK = 67_280  # the sample shop's order lines (seeds differ by about 0.2 %)
#: table -> the id columns suffixed per block
ID_COLUMNS = {
    "orders": ("order_id", "customer_id"),
    "order_lines": ("line_id", "order_id"),
    "returns": ("return_id", "line_id"),
    "contacts": ("contact_id", "order_id"),
    "assignments": ("customer_id",),
}
SUMMED = {"sessions": "sessions", "marketing_spend": "spend"}  # day-level tables: summed over blocks
FIRST_BLOCK_ONLY = ("actions", "experiments")


def blocks_for(order_lines: int) -> int:
    """The number of blocks whose lines come closest to ``order_lines`` (at least one)."""
    return max(1, round(order_lines / LINES_PER_BLOCK))


def block(i: int) -> dict[str, pd.DataFrame]:
    """Block ``i``: the sample-shop generator at seed ``DEFAULT_SEED + i``, ids suffixed ``-b<i>``."""
    tables = generate_shop(DEFAULT_SEED + i)
    suffix = f"-b{i}"
    for name, columns in ID_COLUMNS.items():
        df = tables[name]
        for col in columns:
            df[col] = df[col].where(df[col].isna(), df[col] + suffix)  # a contact about no order stays so
    return tables


def arrow_table(df: pd.DataFrame, name: str) -> pa.Table:
    """``df`` as Arrow, dates as ``date32`` (as a warehouse export has them), no pandas metadata."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    for col in TABLES[name].columns:
        if col.kind == "date":
            i = table.schema.get_field_index(col.name)
            table = table.set_column(i, col.name, table.column(i).cast(pa.timestamp("s")).cast(pa.date32()))
    return table.replace_schema_metadata(None)


def _peak_rss_mib() -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def build(folder: Path, order_lines: int, log=print) -> dict:
    """Write the shop of about ``order_lines`` lines into ``folder`` (replaced whole); its manifest.

    Built in a temporary sibling folder and renamed, the manifest written last: a folder without
    ``manifest.json`` is incomplete.
    """
    t0 = time.perf_counter()
    n_blocks = blocks_for(order_lines)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    writers: dict[str, pq.ParquetWriter] = {}
    rows = dict.fromkeys(ALL_TABLES, 0)
    summed: dict[str, pd.DataFrame] = {}
    try:
        for i in range(n_blocks):
            tables = block(i)
            for name, df in tables.items():
                if name in SUMMED:
                    col = SUMMED[name]
                    if name in summed:  # the same day x channel [x category] rows in the same order
                        summed[name][col] = summed[name][col].to_numpy() + df[col].to_numpy()
                    else:
                        summed[name] = df
                    continue
                if name in FIRST_BLOCK_ONLY and i:
                    continue
                table = arrow_table(df, name)
                if name not in writers:
                    writers[name] = pq.ParquetWriter(tmp / f"{name}.parquet", table.schema)
                writers[name].write_table(table.cast(writers[name].schema))
                rows[name] += table.num_rows
            del tables
            if (i + 1) % 25 == 0 or i + 1 == n_blocks:
                log(f"  block {i + 1}/{n_blocks}: {rows['order_lines']:,} order lines "
                    f"({time.perf_counter() - t0:.0f} s)")
        for name, df in summed.items():
            if name == "marketing_spend":
                df["spend"] = np.round(df["spend"], 2)
            pq.write_table(arrow_table(df, name), tmp / f"{name}.parquet")
            rows[name] = len(df)
        for w in writers.values():
            w.close()
        writers.clear()
        manifest = {
            "nominal_order_lines": order_lines, "blocks": n_blocks, "first_seed": DEFAULT_SEED,
            "version": LARGE_VERSION, "format": "parquet", "rows": rows,
            "bytes": sum(p.stat().st_size for p in tmp.iterdir()),
            "built": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "build_seconds": round(time.perf_counter() - t0, 1), "build_peak_rss_mib": _peak_rss_mib(),
        }
        write_json(tmp / "manifest.json", manifest)
        os.chmod(tmp, 0o755)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        for w in writers.values():
            w.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m playbook.dev.large_shop", description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, required=True, help="order lines wanted (rounded to whole blocks)")
    parser.add_argument("--into", required=True, help="the shop's folder (replaced whole)")
    args = parser.parse_args(argv)
    if args.lines < 1:
        parser.error("--lines must be at least 1")
    m = build(Path(args.into), args.lines)
    print(f"{args.into}: {m['rows']['order_lines']:,} order lines in {m['blocks']} blocks, "
          f"{m['bytes'] / 2**20:.1f} MiB, {m['build_seconds']} s, builder's peak RSS {m['build_peak_rss_mib']} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
