"""UCI Online Retail (2010-12-01 .. 2011-12-09) mapped onto the data contract.

The source is the transaction export described in ``../shared/data/README.md`` (one row per
invoice line: InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice, CustomerID,
Country; an InvoiceNo starting with ``C`` is a cancellation / credit note). It is a real,
messy export, and it lacks most of what a returns team has: no return reasons, no delivery
dates, no costs, no channels, no sessions. This adapter produces the three required tables
(``orders``, ``order_lines``, ``returns``) and nothing else; the playbook reports every
optional table as missing and every number needing one as "not available".

Usage (from the repository, with the data beside it; ``make retail`` does both steps)::

    .venv/bin/playbook adapt online-retail ../shared/data/online_retail.csv.xz exports/online_retail
    # writes exports/online_retail/{orders,order_lines,returns}.parquet and shop.yaml (each atomically)
    # and prints the report; then: .venv/bin/playbook weekly --data exports/online_retail

    from playbook.adapters.online_retail import to_contract
    tables = to_contract(path)      # {"orders": DataFrame, "order_lines": ..., "returns": ...}
    tables.report                   # AdapterReport: rows kept and dropped per rule, matching counts

The shop (``shop.yaml`` beside the tables, ``SHOP``): "Online Retail (UCI)", amounts in GBP (the
data set's prices are pounds sterling), on the Europe/London clock (the InvoiceDate is the UK shop's
local time, kept as written).

Assumptions (each one a choice, counted in the report where it drops or merges rows):

Rows kept
    * Only rows with a CustomerID (about 25 % of the rows have none: the contract needs a
      customer, and returns can only be matched to a customer's earlier purchase).
    * Only invoices numbered ``NNNNNN`` (sale) or ``CNNNNNN`` (cancellation); the three
      ``A...`` "adjust bad debt" rows are dropped (they have no customer anyway).
    * Only product StockCodes: five digits with an optional letter suffix (``85123A``) or a
      ``DCGS...`` code (dotcom-shop products such as party bags and dog collars). Every other
      code is a fee, service or accounting entry and is dropped, counted per code: ``POST`` and
      ``DOT`` (postage), ``C2`` (carriage), ``M``/``m`` (manual adjustment), ``D`` (discount),
      ``S`` (samples), ``B`` (bad debt), ``BANK CHARGES``, ``AMAZONFEE``, ``CRUK`` (charity
      commission), ``PADS`` (0.001 GBP filler item), ``gift_0001_*`` (gift vouchers).
    * Only rows with UnitPrice > 0 (free or zero-priced lines carry no sale to return).
    * Only sales with Quantity > 0 and cancellations with Quantity < 0 (none is left out on
      the rows with a customer, but the rule is checked).
    * Exact duplicate rows are *kept* and summed into their line (see below): a repeated scan
      in a wholesale order cannot be told from an export duplicate; their number is reported.

Orders (one per sale invoice)
    * ``order_id`` = InvoiceNo; ``order_ts`` = its earliest InvoiceDate (a few invoices span
      two minutes); ``customer_id`` = CustomerID as text (``17850``); ``region`` = Country
      (as written, including ``Unspecified``, ``EIRE``, ``European Community``).
    * ``channel`` = ``web`` for every order: the retailer is a non-store, online-only shop,
      so the channel slice has one value and says nothing.
    * ``shipping_cost`` = 0: the data have no shipping costs (POST/DOT/C2 lines are what the
      customer paid, not what the shop paid, and are dropped above).
    * ``promised_delivery_date`` = order date + 3 days and ``delivered_ts`` = ``order_ts`` +
      2 days. **ASSUMED**: the data have no delivery dates. Every order is "delivered" two days
      after the order and "on time", so ``delivery_promise_kept`` (always 100 %) and
      ``click_to_possession_days`` (always 2) are not meaningful, and the return window of the
      return rate starts two days after the order.

Order lines (one per invoice and StockCode)
    * ``line_id`` = ``<InvoiceNo>-<StockCode>``; ``sku`` = StockCode; rows of the same invoice
      and StockCode are one line: quantities summed, ``unit_price`` = value-weighted mean price
      (sum of quantity x price / quantity).
    * ``category``: a coarse product family from keywords of the item's Description (its most
      frequent description across the file, so a StockCode has one category), first matching
      family in this order: seasonal, jewellery_accessories, party_toys_crafts, stationery_gift_wrap,
      bags, candles_lighting, kitchen_dining, garden_outdoor, storage, home_decor; else
      ``other``. See ``CATEGORY_KEYWORDS``. The shop sells giftware and homeware with
      descriptions like "WHITE HANGING HEART T-LIGHT HOLDER": the first word is usually a colour
      and the StockCode number is not a hierarchy, so keywords are the least bad slice.
    * ``discount_amount`` = 0 (no discounts in the data; the ``D`` discount lines are dropped).
    * ``unit_cost`` = 0: the data have no costs, so every margin and contribution figure is
      meaningless on this source (return costs are refunds only, see below).

Returns (cancellations matched to an earlier purchase)
    * A cancellation line (one per cancellation invoice and StockCode, quantities summed) is
      matched to the same customer's purchase lines of the same StockCode placed at or before
      the cancellation, the most recent purchase first, each purchase line giving at most its
      quantity not yet returned. The returned quantity is min(cancelled quantity, what the
      matched lines still hold); a cancellation spread over several lines gives one return row
      per line (``return_id`` = ``<CInvoiceNo>-<StockCode>-<n>``).
    * A cancellation with no such purchase (mostly items bought before December 2010, when the
      export starts) is dropped and counted; the unmatched part of a partly matched one too.
    * ``requested_ts`` = the cancellation's InvoiceDate; ``reason_code`` = ``other`` and
      ``reason_text`` = "" (the data have no reasons: the reason mix is 100 % ``other`` and the
      weak-cohort search effectively compares slices on the whole return rate);
      ``refund_amount`` = quantity x the cancellation's unit price (what was credited);
      ``return_shipping_cost`` = ``processing_cost`` = 0; ``resolution`` = ``refund``.
    * A cancellation is not always a return of delivered goods (it can be an order cancelled
      before dispatch, a price correction or a credit note); the data cannot tell them apart,
      which is the main caveat of reading these "returns" as returns.

Runs in a few seconds (reading the 3 MB xz file dominates); the matching loops only over the
(customer, StockCode) pairs that have a cancellation. The output is deterministic: same input,
same rows in the same order.
"""
from __future__ import annotations

import argparse
import bisect
import io
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from playbook.core import atomic
from playbook.data.contract import TABLES

PRODUCT_CODE = re.compile(r"^(\d{5}[A-Za-z]{0,2}|DCGS[0-9A-Za-z]+)$")
INVOICE = re.compile(r"^C?\d+$")
CHANNEL = "web"
DELIVERY_DAYS = 2  # ASSUMED delivered_ts = order_ts + 2 days
PROMISE_DAYS = 3  # ASSUMED promised_delivery_date = order date + 3 days
REASON_CODE = "other"
RESOLUTION = "refund"

# Coarse product families, first match wins (whole words of the upper-cased description).
CATEGORY_KEYWORDS: tuple[tuple[str, frozenset[str]], ...] = tuple(
    (name, frozenset(words.split()))
    for name, words in (
        ("seasonal", "CHRISTMAS XMAS ADVENT SANTA REINDEER SNOWMAN SNOWFLAKE NATIVITY EASTER HALLOWEEN"),
        ("jewellery_accessories",
         "NECKLACE NECKLACES BRACELET EARRINGS RING RINGS CHARM BROOCH DIAMANTE BEAD BEADS BEADED HAIR "
         "HAIRCLIP HAIRCLIPS PURSE HANDBAG UMBRELLA SCARF JEWELLED JEWELLERY BANGLE KEYRING WARMER WARMERS "
         "LIP GLOSS FAN COMPACT"),
        ("party_toys_crafts",
         "PARTY TOY TOYS JIGSAW GAME GAMES DOLL DOLLY CHILDRENS CHILDS CHILD KIDS BABY BALLOON BALLOONS "
         "SPACEBOY DINOSAUR SOLDIER SOLDIERS SKIPPING MAGIC PLAYHOUSE TEDDY BINGO DOMINOES LADDERS "
         "SPINNING GLIDERS CRAYONS COLOURING PAINT CLAY MODELLING STENCIL CRAFT FELTCRAFT KNITTING "
         "SEWING"),
        ("stationery_gift_wrap",
         "CARD CARDS WRAP PAPER NOTEBOOK NOTEBOOKS PEN PENS PENCIL PENCILS STICKERS STICKER TAPE RIBBON "
         "RIBBONS TISSUES TAG TAGS ENVELOPE ENVELOPES CALENDAR BOOK BOOKS NOTEPAD NOTE ERASER DIARY "
         "STATIONERY CHALKBOARD CHALK MEMO RULER"),
        ("bags", "BAG BAGS SHOPPER TOTE RUCKSACK BACKPACK"),
        ("candles_lighting",
         "CANDLE CANDLES T-LIGHT T-LIGHTS TEALIGHT TEALIGHTS LANTERN LANTERNS LIGHT LIGHTS LAMP "
         "INCENSE CANDLEHOLDER CANDLESTICK CHANDELIER"),
        ("kitchen_dining",
         "MUG MUGS CUP CUPS SAUCER SAUCERS TEACUP TEACUPS BOWL BOWLS PLATE PLATES DISH TRAY CAKE CAKES "
         "BAKING CUTLERY JAR JARS BOTTLE BOTTLES TEA COFFEE KITCHEN PANTRY NAPKINS NAPKIN LUNCH SPOON "
         "SPOONS CAKESTAND APRON JUG TEAPOT GLOVE CHOPPING STRAWS RECIPE TUMBLER GLASSES COASTER "
         "COASTERS PLACEMATS BEAKER SUGAR JELLY CHOCOLATE BISCUIT COOKIE JAM BREAD"),
        ("garden_outdoor",
         "GARDEN GARDENERS PLANT PLANTER WATERING BIRDHOUSE FEEDER PARASOL PICNIC FLOWERPOT GNOME "
         "SECATEURS KNEELING"),
        ("storage",
         "BOX BOXES BASKET BASKETS CABINET DRAWER DRAWERS STORAGE TRUNK CASE CASES TIN TINS HAMPER "
         "CRATE CHEST CONTAINER"),
        ("home_decor",
         "FRAME MIRROR CLOCK SIGN CUSHION COVER DOORMAT HOOK HOOKS HANGER HANGERS DECORATION "
         "DECORATIONS GARLAND WREATH ORNAMENT VASE TILE MAGNET MAGNETS PLAQUE HEART HEARTS DOORSTOP "
         "THROW BLANKET CURTAIN QUILT BELL BELLS BUNTING HOLDER ART WALL KNOB DOORKNOB STAR BLOCK "
         "PEGS RACK"),
    )
)
OTHER_CATEGORY = "other"

#: the shop.yaml written beside the tables: whose data they are, in which currency and on which clock
SHOP = {"name": "Online Retail (UCI)", "currency": "GBP", "timezone": "Europe/London"}
SHOP_FILE = "shop.yaml"  # playbook.config.loader.SHOP_FILE (a lower layer cannot import it)


@dataclass
class AdapterReport:
    """What the adapter kept, dropped and matched (rows of the source unless said otherwise)."""

    source: str
    source_rows: int
    dropped: dict[str, int] = field(default_factory=dict)  # rule -> rows, in the order applied
    dropped_non_product_codes: dict[str, int] = field(default_factory=dict)  # StockCode -> rows
    sale_rows_kept: int = 0
    cancellation_rows_kept: int = 0
    duplicate_rows_summed: int = 0  # exact duplicates among the kept rows (kept, summed)
    invoices_with_several_timestamps: int = 0
    orders: int = 0
    order_lines: int = 0
    returns: int = 0
    cancellation_lines: int = 0  # (cancellation invoice, StockCode) after summing
    cancellation_lines_matched_fully: int = 0
    cancellation_lines_matched_partly: int = 0
    cancellation_lines_unmatched: int = 0  # dropped: no earlier purchase of the item by the customer
    units_cancelled: int = 0
    units_matched: int = 0
    units_unmatched: int = 0  # dropped
    median_lag_days: float = float("nan")  # requested_ts - order_ts of the matched line, over returns rows
    categories: dict[str, int] = field(default_factory=dict)  # order lines per category
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        out = [f"source: {self.source} ({self.source_rows:,} rows)"]
        for rule, n in self.dropped.items():
            out.append(f"dropped {n:>8,} rows: {rule}")
        if self.dropped_non_product_codes:
            codes = ", ".join(f"{c} {n:,}" for c, n in self.dropped_non_product_codes.items())
            out.append(f"  non-product codes: {codes}")
        out += [
            f"kept     {self.sale_rows_kept:>8,} sale rows and {self.cancellation_rows_kept:,} cancellation rows"
            f" ({self.duplicate_rows_summed:,} exact duplicate rows among them, summed into their line)",
            f"orders {self.orders:,} ({self.invoices_with_several_timestamps} invoices with several timestamps:"
            f" earliest kept), order_lines {self.order_lines:,}, returns {self.returns:,}",
            f"cancellation lines {self.cancellation_lines:,}: {self.cancellation_lines_matched_fully:,} matched fully,"
            f" {self.cancellation_lines_matched_partly:,} partly, {self.cancellation_lines_unmatched:,} unmatched (dropped)",
            f"units cancelled {self.units_cancelled:,}: matched {self.units_matched:,}"
            f" ({self.units_matched / max(self.units_cancelled, 1):.1%}), unmatched {self.units_unmatched:,} (dropped)",
            f"median lag order -> return request: {self.median_lag_days:.1f} days",
            "categories (lines): " + ", ".join(f"{c} {n:,}" for c, n in self.categories.items()),
            f"adapted in {self.seconds:.1f} s",
        ]
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


class ContractTables(dict):
    """``{table name: DataFrame}`` for the contract tables produced, with the adapter's ``report``."""

    report: AdapterReport


def read_source(path: str | Path) -> pd.DataFrame:
    """The export as the README says to read it (CSV, optionally compressed: .xz, .gz...)."""
    return pd.read_csv(
        path,
        dtype={"InvoiceNo": str, "StockCode": str, "Description": str, "Country": str},
        parse_dates=["InvoiceDate"],
    )


def categorize(description: str | None) -> str:
    """The coarse product family of a description (first family with a keyword among its words)."""
    if not isinstance(description, str):
        return OTHER_CATEGORY
    words = set(re.findall(r"[A-Z0-9][A-Z0-9'\-]*", description.upper()))
    for name, keywords in CATEGORY_KEYWORDS:
        if words & keywords:
            return name
    return OTHER_CATEGORY


def _sku_categories(raw: pd.DataFrame) -> pd.Series:
    """StockCode -> category, from its most frequent description over the whole file (ties: first in text order)."""
    d = raw.dropna(subset=["Description"])
    counts = d.groupby(["StockCode", "Description"]).size().rename("n").reset_index()
    counts = counts.sort_values(["StockCode", "n", "Description"], ascending=[True, False, True])
    top = counts.drop_duplicates("StockCode").set_index("StockCode")["Description"]
    return top.map(categorize)


def _drop(df: pd.DataFrame, bad: pd.Series, rule: str, report: AdapterReport) -> pd.DataFrame:
    report.dropped[rule] = int(bad.sum())
    return df[~bad]


def _sum_lines(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of the same (invoice, StockCode) as one line: quantity summed, value-weighted unit price."""
    rows = rows.assign(value=rows["Quantity"] * rows["UnitPrice"])
    g = rows.groupby(["InvoiceNo", "StockCode"], sort=True).agg(
        quantity=("Quantity", "sum"), value=("value", "sum"), customer=("customer_id", "first"),
    ).reset_index()
    g["unit_price"] = (g["value"] / g["quantity"]).round(6)
    return g.drop(columns="value")


def _ns(ts: pd.Series) -> list[int]:
    return ts.astype("datetime64[ns]").astype("int64").tolist()


def _match(cancels: pd.DataFrame, lines: pd.DataFrame) -> tuple[pd.DataFrame, dict[int, int]]:
    """Allocate each cancellation line to earlier purchase lines of the same customer and StockCode.

    ``cancels`` and ``lines`` carry customer, StockCode, ts, quantity (and ids). Cancellations are
    processed in time order; each takes from the most recent purchase line at or before it that
    still has quantity not returned. Returns the allocations (one row per cancellation x line)
    and the matched units per cancellation index.
    """
    keys = ["customer", "StockCode"]
    wanted = cancels[keys].drop_duplicates()
    cand = lines.merge(wanted, on=keys, how="inner").sort_values(keys + ["order_ts", "line_id"], kind="stable")
    # Plain lists (one pass over the candidate lines): a pandas groupby loop would cost seconds.
    c_times = _ns(cand["order_ts"])
    c_ids = cand["line_id"].tolist()
    c_order_ts = cand["order_ts"].tolist()
    remaining = cand["quantity"].astype("int64").tolist()
    bounds: dict[tuple, list[int]] = {}
    for i, key in enumerate(zip(cand["customer"].tolist(), cand["StockCode"].tolist())):
        b = bounds.setdefault(key, [i, i])
        b[1] = i + 1
    alloc, matched = [], {}
    ordered = cancels.sort_values(["ts", "InvoiceNo", "StockCode"], kind="stable")
    for idx, cust, code, ts, qty in zip(ordered.index.tolist(), ordered["customer"].tolist(),
                                        ordered["StockCode"].tolist(), _ns(ordered["ts"]),
                                        ordered["quantity"].astype("int64").tolist()):
        need, got = qty, 0
        b = bounds.get((cust, code))
        if b is not None:
            lo, hi = b
            j = bisect.bisect_right(c_times, ts, lo, hi) - 1  # the last purchase at or before the cancellation
            while need > 0 and j >= lo:
                take = min(need, remaining[j])
                if take > 0:
                    remaining[j] -= take
                    need -= take
                    got += take
                    alloc.append((idx, c_ids[j], c_order_ts[j], take))
                j -= 1
        matched[idx] = got
    out = pd.DataFrame(alloc, columns=["cancel_index", "line_id", "order_ts", "quantity"])
    return out, matched


def to_contract(path: str | Path) -> ContractTables:
    """Read the Online Retail export at ``path`` and return ``orders``, ``order_lines`` and ``returns``.

    The result is a dict of DataFrames in the contract's column order, with ``.report`` (an
    :class:`AdapterReport`). Every assumption is listed in this module's docstring.
    """
    started = time.perf_counter()
    raw = read_source(path)
    report = AdapterReport(source=str(path), source_rows=len(raw))
    df = raw
    df = _drop(df, df["CustomerID"].isna(), "no CustomerID", report)
    df = _drop(df, ~df["InvoiceNo"].str.match(INVOICE.pattern), "InvoiceNo neither a sale nor a cancellation (C...)", report)
    non_product = ~df["StockCode"].str.match(PRODUCT_CODE.pattern)
    codes = df.loc[non_product, "StockCode"].value_counts()
    report.dropped_non_product_codes = {str(c): int(n) for c, n in sorted(codes.items(), key=lambda kv: (-kv[1], kv[0]))}
    df = _drop(df, non_product, "non-product StockCode (fees, postage, adjustments, vouchers)", report)
    df = _drop(df, ~(df["UnitPrice"] > 0), "UnitPrice zero or negative", report)
    cancel = df["InvoiceNo"].str.startswith("C")
    wrong_sign = (cancel & ~(df["Quantity"] < 0)) | (~cancel & ~(df["Quantity"] > 0))
    df = _drop(df, wrong_sign, "Quantity of the wrong sign (sale <= 0 or cancellation >= 0)", report)
    cancel = df["InvoiceNo"].str.startswith("C")
    report.duplicate_rows_summed = int(df.duplicated().sum())
    df = df.assign(customer_id=df["CustomerID"].astype("int64").astype(str))

    sales, cancels_raw = df[~cancel], df[cancel]
    report.sale_rows_kept, report.cancellation_rows_kept = len(sales), len(cancels_raw)

    # orders: one per sale invoice
    inv = sales.groupby("InvoiceNo", sort=True).agg(
        order_ts=("InvoiceDate", "min"), n_ts=("InvoiceDate", "nunique"),
        customer_id=("customer_id", "first"), region=("Country", "first"),
    ).reset_index()
    report.invoices_with_several_timestamps = int((inv["n_ts"] > 1).sum())
    orders = pd.DataFrame({
        "order_id": inv["InvoiceNo"],
        "order_ts": inv["order_ts"],
        "customer_id": inv["customer_id"],
        "channel": CHANNEL,
        "region": inv["region"],
        "promised_delivery_date": (inv["order_ts"].dt.normalize() + pd.Timedelta(days=PROMISE_DAYS)).dt.date,
        "delivered_ts": inv["order_ts"] + pd.Timedelta(days=DELIVERY_DAYS),
        "shipping_cost": 0.0,
    }).sort_values(["order_ts", "order_id"], kind="stable").reset_index(drop=True)

    # order lines: one per (invoice, StockCode)
    sl = _sum_lines(sales)
    sl["line_id"] = sl["InvoiceNo"] + "-" + sl["StockCode"]
    sl = sl.merge(orders[["order_id", "order_ts"]], left_on="InvoiceNo", right_on="order_id", how="left")
    category = sl["StockCode"].map(_sku_categories(raw)).fillna(OTHER_CATEGORY)
    lines = pd.DataFrame({
        "line_id": sl["line_id"],
        "order_id": sl["InvoiceNo"],
        "sku": sl["StockCode"],
        "category": category,
        "quantity": sl["quantity"].astype("int64"),
        "unit_price": sl["unit_price"].astype(float),
        "discount_amount": 0.0,
        "unit_cost": 0.0,
    })
    report.categories = {str(k): int(v) for k, v in lines["category"].value_counts().sort_index().items()}

    # returns: cancellation lines matched to earlier purchase lines
    cl = _sum_lines(cancels_raw)
    cl["quantity"] = -cl["quantity"]  # cancellations carry negative quantities
    ts = cancels_raw.groupby(["InvoiceNo", "StockCode"], sort=True)["InvoiceDate"].min()
    cl = cl.merge(ts.rename("ts").reset_index(), on=["InvoiceNo", "StockCode"], how="left")
    purchase = sl[["line_id", "customer", "StockCode", "order_ts", "quantity"]]
    alloc, matched = _match(cl, purchase)
    got = pd.Series(matched).reindex(cl.index).fillna(0).astype(int)
    report.cancellation_lines = len(cl)
    report.units_cancelled = int(cl["quantity"].sum())
    report.units_matched = int(got.sum())
    report.units_unmatched = report.units_cancelled - report.units_matched
    report.cancellation_lines_matched_fully = int((got == cl["quantity"]).sum())
    report.cancellation_lines_unmatched = int((got == 0).sum())
    report.cancellation_lines_matched_partly = (
        report.cancellation_lines - report.cancellation_lines_matched_fully - report.cancellation_lines_unmatched
    )

    a = alloc.join(cl[["InvoiceNo", "StockCode", "ts", "unit_price"]], on="cancel_index")
    a["n"] = a.groupby("cancel_index").cumcount() + 1
    returns = pd.DataFrame({
        "return_id": a["InvoiceNo"] + "-" + a["StockCode"] + "-" + a["n"].astype(str),
        "line_id": a["line_id"],
        "requested_ts": a["ts"],
        "quantity": a["quantity"].astype("int64"),
        "reason_code": REASON_CODE,
        "reason_text": "",
        "refund_amount": (a["quantity"] * a["unit_price"]).astype(float),
        "return_shipping_cost": 0.0,
        "processing_cost": 0.0,
        "resolution": RESOLUTION,
    }).sort_values(["requested_ts", "return_id"], kind="stable").reset_index(drop=True)
    lag = (a["ts"] - a["order_ts"]).dt.total_seconds() / 86400.0
    report.median_lag_days = float(lag.median()) if len(lag) else float("nan")

    report.orders, report.order_lines, report.returns = len(orders), len(lines), len(returns)
    out = ContractTables(
        orders=_contract_columns("orders", orders),
        order_lines=_contract_columns("order_lines", lines),
        returns=_contract_columns("returns", returns),
    )
    report.seconds = time.perf_counter() - started
    out.report = report
    return out


def _contract_columns(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    return frame[list(TABLES[name].column_names)].reset_index(drop=True)


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def _conflicts(names, folder: Path) -> list[str]:
    """Files that hold one of ``names`` in another format (the playbook would refuse the folder)."""
    return [p.name for n in names for p in (folder / f"{n}.csv", folder / f"{n}.csv.gz") if p.exists()]


def write_tables(tables: dict[str, pd.DataFrame], folder: str | Path) -> list[Path]:
    """Write ``<table>.parquet`` for each table into ``folder``, each file atomically.

    Refuses (ValueError) when the folder holds the same table in another format (``orders.csv``):
    the playbook would then not know which file to read.
    """
    folder = Path(folder)
    others = _conflicts(tables, folder)
    if others:
        raise ValueError(f"{folder} already holds {', '.join(others)}: remove it or choose another folder")
    return [atomic.write_bytes(folder / f"{name}.parquet", parquet_bytes(frame)) for name, frame in tables.items()]


def write_shop(folder: str | Path) -> Path:
    """Write ``shop.yaml`` (``SHOP``: the shop's name, GBP, Europe/London) into ``folder``, atomically."""
    text = "".join(f"{key}: {json.dumps(value)}\n" for key, value in SHOP.items())  # JSON strings are YAML
    return atomic.write_text(Path(folder) / SHOP_FILE, "# written by playbook adapt online-retail\n" + text)


def adapt(source: str | Path, out: str | Path) -> int:
    """Adapt the export ``source`` into the folder ``out`` (tables and shop.yaml), print the report; an exit code.

    2 with the reason on standard error when ``source`` is not a file or ``out`` holds a table in another format.
    """
    source, out = Path(source), Path(out)
    if not source.is_file():
        print(f"error: {source} is not a file (the Online Retail export, e.g. ../shared/data/online_retail.csv.xz "
              f"beside the repository)", file=sys.stderr)
        return 2
    others = _conflicts(("orders", "order_lines", "returns"), out)
    if others:
        print(f"error: {out} already holds {', '.join(others)}: remove it or choose another folder", file=sys.stderr)
        return 2
    tables = to_contract(source)
    try:
        paths = write_tables(tables, out)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths.append(write_shop(out))
    print(tables.report)
    for p in paths:
        print(f"wrote {p}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m playbook.adapters.online_retail",
        description="Map the UCI Online Retail export onto the data contract (orders, order_lines, returns as Parquet, "
                    "and shop.yaml). The same as: playbook adapt online-retail SOURCE OUT.",
    )
    parser.add_argument("source", help="the export, e.g. ../shared/data/online_retail.csv.xz")
    parser.add_argument("out", help="the folder to write <table>.parquet and shop.yaml into (created if needed)")
    args = parser.parse_args(argv)
    return adapt(args.source, args.out)


if __name__ == "__main__":
    sys.exit(main())
