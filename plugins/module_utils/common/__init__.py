# -*- coding: utf-8 -*-
# Private to restorable.backup: small helpers shared by the target-side engines.
# Standard library only, relative imports only: this package is also copied to hosts
# and run there as a standalone program (see runtime/standalone.py).
