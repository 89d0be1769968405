# -*- coding: utf-8 -*-
# Private to restorable.backup: the program on a host. The tier registry, the command line the
# timers run, and the standalone copy of the engine the job module installs.
