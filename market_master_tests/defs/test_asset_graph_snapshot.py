"""The asset graph's shape (keys, dependencies, partitioning, checks, jobs) against a committed snapshot,
so an accidental lineage change fails here instead of in the UI. After an INTENDED change, regenerate:
`MM_UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest market_master_tests/defs/test_asset_graph_snapshot.py`
and review the diff of snapshots/asset_graph.json."""

import json
import os
from pathlib import Path

from market_master.definitions import defs

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"


def graph_shape() -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        partitions = node.partitions_def
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "upstream": {
                p.to_user_string(): _mapping(graph, key, p) for p in sorted(node.parent_keys, key=str)
            },
            "partitioned": None if partitions is None else type(partitions).__name__,
            "backfill_policy": None
            if node.backfill_policy is None
            else str(node.backfill_policy.policy_type),
            "checks": sorted(c.name for c in graph.asset_check_keys if c.asset_key == key),
            "blocking_checks": sorted(
                c.name for c in graph.asset_check_keys if c.asset_key == key and graph.get(c).blocking
            ),
        }
    jobs = {job.name: sorted(job.selection.resolve(graph)) for job in defs.jobs}
    return {
        "assets": assets,
        "jobs": {name: [k.to_user_string() for k in keys] for name, keys in sorted(jobs.items())},
        "schedules": sorted(s.name for s in defs.schedules),
        "sensors": sorted(s.name for s in defs.sensors),
    }


def _mapping(graph, key, parent) -> str | None:
    """How the child's partitions map onto the parent's (e.g. the feature look-back), None if unpartitioned."""
    if graph.get(key).partitions_def is None or graph.get(parent).partitions_def is None:
        return None
    return repr(graph.get_partition_mapping(key, parent))


def test_asset_graph_matches_the_committed_snapshot():
    shape = json.loads(json.dumps(graph_shape()))
    if os.environ.get("MM_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(shape, indent=2, sort_keys=True) + "\n")
    assert shape == json.loads(SNAPSHOT.read_text()), (
        "the asset graph changed: if intended, regenerate the snapshot (see this module's docstring)"
    )
