"""The large benchmark shops (issue 12): written block by block, and the aggregation compared with pandas."""
from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from playbook.dev import bench, large_shop
from playbook.dev.sample_data import DEFAULT_SEED, generate_shop


@pytest.fixture(scope="module")
def two_blocks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("large") / "shop"
    manifest = large_shop.build(folder, 2 * large_shop.LINES_PER_BLOCK, log=lambda _: None)
    return folder, manifest


def test_a_shop_is_its_blocks_drawn_with_their_own_seeds(two_blocks):
    folder, manifest = two_blocks
    expected = sum(len(generate_shop(DEFAULT_SEED + i)["order_lines"]) for i in range(2))
    assert manifest["blocks"] == 2
    assert pq.ParquetFile(folder / "order_lines.parquet").metadata.num_rows == expected == manifest["rows"]["order_lines"]


def test_each_block_is_appended_as_its_own_row_group(two_blocks):
    folder, _ = two_blocks
    for name in ("orders", "order_lines", "returns", "contacts", "assignments"):
        assert pq.ParquetFile(folder / f"{name}.parquet").metadata.num_row_groups == 2, name


def test_ids_of_different_blocks_never_collide(two_blocks):
    folder, _ = two_blocks
    for name, col in (("order_lines", "line_id"), ("orders", "order_id"), ("returns", "return_id")):
        ids = pq.read_table(folder / f"{name}.parquet", columns=[col]).column(col).to_pandas()
        assert ids.is_unique, name


def test_day_level_tables_are_summed_over_the_blocks_not_repeated(two_blocks):
    folder, _ = two_blocks
    sessions = pq.read_table(folder / "sessions.parquet").to_pandas()
    a, b = (generate_shop(DEFAULT_SEED + i)["sessions"] for i in range(2))
    assert len(sessions) == len(a)
    assert sessions["sessions"].sum() == a["sessions"].sum() + b["sessions"].sum()


def test_engine_and_pandas_aggregations_agree_to_the_unit(two_blocks):
    folder, _ = two_blocks
    engine, pandas = bench._aggregate_engine(folder), bench._aggregate_pandas(folder)
    assert len(engine) == len(pandas) > 26 * 8  # weeks x categories, split by reason
    assert bench._digest(engine) == bench._digest(pandas)


def test_the_runner_log_gives_each_notebook_its_seconds():
    log = "Week 2026-W47 from x -> y.\n[1/2] 01_baseline ...\n[1/2] 01_baseline ok (12.5 s)\n[2/2] 02_weak_cohort ok (3.0 s)\n"
    assert bench.notebook_seconds(log) == {"01_baseline": 12.5, "02_weak_cohort": 3.0}
