# -*- coding: utf-8 -*-
# Private to restorable.backup: the tier-neutral engine on a host. One Runner owns the run
# (lock, window and load gate, deadline, signals, hooks, consistency profile, status, metrics,
# ping) and calls a TierDriver for the tier's own work. Standard library only, relative
# imports only: the package is also copied to hosts and run there as a standalone program.
