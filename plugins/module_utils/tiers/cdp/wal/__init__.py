# -*- coding: utf-8 -*-
# Private to restorable.backup: PostgreSQL continuous archiving for the CDP tier: WAL stores
# (local directory, SFTP, S3), the archiver PostgreSQL runs, continuity verification, base
# backups with chain-aware retention, point-in-time restore and its drills.
# The archive path (archiver, factory, the stores, names) imports only cheap standard modules
# at the top: PostgreSQL starts it once per WAL segment.
