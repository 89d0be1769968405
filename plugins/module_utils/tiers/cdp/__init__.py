# -*- coding: utf-8 -*-
# Private to restorable.backup: the CDP tier (minute-level recovery points: btrfs snapshots
# replicated over SSH, PostgreSQL WAL archiving with point-in-time restore).
