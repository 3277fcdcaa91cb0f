"""polars DataFrame and Series <-> ``vineyard::Table`` (arrow.py's layout), through Arrow.

As in the reference, a frame is put as the Table of ``frame.to_arrow()`` with the field
``from_polars`` set, and the Table resolver (arrow.py) returns a polars frame for such a
Table: ``pl.from_arrow`` over the mapped buffers, so numeric columns are not copied (string
columns are converted to polars' string layout). A Series is put as a one-column frame that
also records ``from_polars_series`` and comes back as a Series. The published client reads
them as pyarrow Tables (or polars frames, when it has polars).
"""
from __future__ import annotations

from typing import Any

import polars as pl
import pyarrow as pa

from .arrow import table_builder


def polars_dataframe_builder(client: Any, value: pl.DataFrame, builder: Any = None,
                             series: bool = False, **kw: Any) -> Any:
    objects = [name for name, dtype in value.schema.items() if dtype == pl.Object]
    if objects:  # (to_arrow would export the objects' addresses)
        raise TypeError(
            f"the polars column(s) {objects} hold Python objects (pl.Object), which have no "
            f"Arrow layout: convert them to a polars type, or pickle the frame")
    fields = {"from_polars": True}
    if series:
        fields["from_polars_series"] = True
    return table_builder(client, value.to_arrow(), builder, fields=fields)


def polars_series_builder(client: Any, value: pl.Series, builder: Any = None,
                          **kw: Any) -> Any:
    return polars_dataframe_builder(client, value.to_frame(), builder, series=True)


def to_polars(table: pa.Table, meta: Any) -> Any:
    """The polars value a Table put from polars stands for (no copy of numeric columns)."""
    frame = pl.from_arrow(table, rechunk=False)
    if meta.get("from_polars_series", False):
        return frame.to_series(0)
    return frame


def register(builder_ctx: Any = None, resolver_ctx: Any = None) -> None:
    """polars frames in the default contexts (the Table resolver already returns them)."""
    if builder_ctx is not None:
        builder_ctx.register(pl.DataFrame, polars_dataframe_builder)
        builder_ctx.register(pl.Series, polars_series_builder)
