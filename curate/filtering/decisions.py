"""The decisions of a run, once every chunk is in: dedup nodes and the dedup reasons added to the rows.

Shared by every executor (local, Ray): ``dedup_nodes`` builds what
:func:`curate.filtering.dedup.steps.decide` takes, ``apply_decisions`` writes its answer back
into the run's slim rows frame (reason, stage, detail, ``dup_of``, ``cluster_id``).
"""

from __future__ import annotations

import polars as pl


def dedup_nodes(rows: pl.DataFrame, anchors: pl.DataFrame) -> pl.DataFrame:
    """Rows still alive, plus the --against rows as anchors, as dedup nodes."""
    cols = [pl.col("row").alias("node"), "id", "exact_key", "length", "score"]
    nodes = rows.filter(pl.col("reason").is_null()).select(*cols, pl.lit(False).alias("anchor"))
    if anchors.height:
        nodes = pl.concat([nodes, anchors.select(*cols, pl.lit(True).alias("anchor"))])
    return nodes


def apply_decisions(rows: pl.DataFrame, nodes: pl.DataFrame, dups: pl.DataFrame) -> pl.DataFrame:
    """Add the dedup reasons, details, ``dup_of`` and ``cluster_id`` of ``dups`` to ``rows``."""
    rows = rows.with_columns(pl.lit(None, pl.String).alias("dup_of"), pl.lit(None, pl.String).alias("cluster_id"))
    if dups.height == 0:
        return rows
    exact = pl.col("stage") == "exact_dedup"
    reps = nodes.select(pl.col("node").alias("rep"), pl.col("id").alias("dup_of_new"), pl.col("anchor").alias("old"))
    dups = dups.join(reps, on="rep", how="left").with_columns(
        (pl.when(exact).then(pl.lit("exact_duplicate")).otherwise(pl.lit("near_duplicate"))
         + pl.when(pl.col("old")).then(pl.lit("_of_existing")).otherwise(pl.lit(""))).alias("reason_new"),
        pl.format("{} {}", pl.when(exact).then(pl.lit("same normalized text as"))
                  .otherwise(pl.format("estimated Jaccard {} with", pl.col("similarity").round(3))),
                  pl.col("dup_of_new")).alias("detail_new"),
    )
    rows = rows.join(dups.select(pl.col("node").alias("row"), pl.col("stage").alias("stage_new"), "reason_new",
                                 "detail_new", "dup_of_new", pl.col("cluster").alias("cluster_new")),
                     on="row", how="left")
    return rows.with_columns(
        pl.coalesce(old, new).alias(old) for old, new in (
            ("reason", "reason_new"), ("stage", "stage_new"), ("detail", "detail_new"), ("dup_of", "dup_of_new"),
            ("cluster_id", "cluster_new"))
    ).drop("stage_new", "reason_new", "detail_new", "dup_of_new", "cluster_new")
