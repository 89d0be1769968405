# -*- coding: utf-8 -*-
"""retention.prune_every with real restic: forget --prune on the N-th backup, nothing before."""
from __future__ import annotations

import dataclasses
import os

from agent_helpers import random_tree, restic_snapshots

MIB = 1 << 20


def data_bytes(repository) -> int:
    """Bytes of pack files: what a prune gives back."""
    return sum(os.path.getsize(os.path.join(folder, name))
               for folder, _dirs, names in os.walk(repository / "data") for name in names)


def test_forget_and_prune_wait_for_the_nth_backup(agent, restic_local_repo, tmp_path):
    # A repository of its own: prune works on the whole repository, and its size is measured.
    repo = dataclasses.replace(restic_local_repo, path=tmp_path / "repo")
    repo.restic("init")
    source = tmp_path / "src"
    config = agent.config("cadence", str(repo.path), repo.password_file, [str(source)],
                          retention={"last": 1, "prune_every": 3})
    runs, sizes, counters = [], [], []
    for _round in range(4):
        random_tree(source, 1, MIB)  # new random content each round: only its own snapshot holds it
        run = agent.run(config)
        assert run.returncode == 0, run
        runs.append(run.result)
        sizes.append(data_bytes(repo.path))
        counters.append(agent.status("cadence")["backups_since_prune"])
    ids = [r["snapshot_id"] for r in runs]
    skipped = {"forgot": False, "pruned": False}
    assert [r["retention"] for r in runs[:2]] == [skipped, skipped]
    # The third backup: the keep rules apply to all three snapshots, and the data only the
    # forgotten two held is pruned.
    pruned = dict(runs[2]["retention"], removed_ids=sorted(runs[2]["retention"]["removed_ids"]))
    assert pruned == {"forgot": True, "pruned": True, "kept": 1, "removed": 2, "removed_ids": sorted(ids[:2])}
    assert runs[3]["retention"] == skipped  # the count starts again
    # Before the third backup both snapshots stayed, beyond last: 1, and no data went.
    assert sizes[0] < sizes[1] and sizes[1] > 2 * MIB
    assert sizes[2] < 1.5 * MIB < sizes[3], sizes
    assert [s["short_id"] for s in restic_snapshots(repo.env(), str(repo.path))] == ids[2:]
    assert counters == [1, 2, 0, 1]
    assert agent.status("cadence")["retention"] == skipped
