# -*- coding: utf-8 -*-
# Private to restorable.backup: where recovery points are kept. A Repository interface and its
# implementations; restic's command lines and error kinds exist in this package only.
