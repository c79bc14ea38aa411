"""The Dagster code location: `pos_exports.definitions:defs`."""

import dagster as dg

from pos_exports import config
from pos_exports.archive.assets import archive_job, daily_archive
from pos_exports.source.resource import PosDatabase, StorageResource


def build_defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[daily_archive],
        jobs=[archive_job],
        resources={
            "pos_database": PosDatabase(url=config.database_url()),
            "storage": StorageResource(root=config.storage_root()),
        },
    )


defs = build_defs()
