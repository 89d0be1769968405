# -*- coding: utf-8 -*-
# Private to restorable.backup: what a host observes for the fleet audit (status, drill ledger,
# locks read back from the storage, tape catalogs, VM states), stdlib only.
