# -*- coding: utf-8 -*-
# Private to restorable.backup: application consistency profiles, host side.
# base.py defines the two kinds a profile implements (streaming: consistent copies and dumps for
# a repository; freezing: quiesce around a snapshot) and builds profiles by kind; sql.py is the
# SQL client session the database profiles share; watchdog.py the process that releases a freeze
# or lock when the runner cannot. Standard library only, relative imports only, shared by the
# agent tier and the snapshot tiers (cdp, array).
