# -*- coding: utf-8 -*-
# Private to restorable.backup: a virtual tape library (slots, drives, pools, barcodes, WORM,
# vault, a catalog rebuilt from the cartridges) and the media drivers that keep its cartridges.
