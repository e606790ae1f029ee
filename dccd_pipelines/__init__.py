"""dccd's Dagster project: catalog -> assets, checks, jobs, schedules, IO manager.

Import ``dccd_pipelines.definitions`` for the ``Definitions`` (it reads the catalog);
importing this package alone reads nothing.
"""

__all__: list[str] = []
