# -*- coding: utf-8 -*-
# Private to restorable.backup: snapshot providers and consistency-group snapshots (cdp, array tiers).
