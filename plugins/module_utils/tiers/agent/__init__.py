# -*- coding: utf-8 -*-
# Private to restorable.backup: the agent tier: files and application dumps of a host, kept in
# restic repositories by the host itself.
