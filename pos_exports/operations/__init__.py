"""Operations as plain functions of data (no Dagster; `now` is passed in): retention coverage, catch-up planning,
cleanup selection, statistics, summaries and delivery planning. `pos_exports.defs` wires them into Dagster."""
