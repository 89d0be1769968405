# -*- coding: utf-8 -*-
# Private to restorable.backup: one package per tier, each a thin composition of the engine's
# parts: a TierDriver for the Runner and a RestoreDriver for drills.
