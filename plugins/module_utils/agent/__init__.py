# -*- coding: utf-8 -*-
# Private to restorable.backup: the agent tier's host-side engine (restic on the host).
# One implementation for the scheduled job (systemd timer or cron, running this package as
# a standalone program) and the on-demand run module. Standard library only, relative
# imports only, so the package also works when copied to /usr/local/lib/restorable.
