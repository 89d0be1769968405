# -*- coding: utf-8 -*-
# Private to restorable.backup: the array tier (application-synchronised group snapshots of
# several volumes, kept on the storage host and exported to a virtual tape library).
