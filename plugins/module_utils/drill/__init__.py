# -*- coding: utf-8 -*-
# Private to restorable.backup: restore drills. One engine (engine.py) runs every drill the
# same way: refuse unsafe sandboxes, choose a recovery point, restore it into a fresh
# directory of the sandbox, verify it in layers, measure RTO and RPO, clean up. A driver per
# tier (tiers/<tier>/restore.py) does the tier's restore and its own verification layers.
