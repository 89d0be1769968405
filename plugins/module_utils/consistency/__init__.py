# -*- coding: utf-8 -*-
# Private to restorable.backup: application consistency (quiesce) profiles, host side.
# base.py is the interface every profile implements (see its docstring); watchdog.py the
# process that releases a freeze or lock when the runner cannot. Standard library only,
# relative imports only, shared by the agent tier and the snapshot tiers (cdp, array).
