# -*- coding: utf-8 -*-
# Private to restorable.backup: the fleet audit on the controller. Every dataset a host's policy
# declares is judged from what the hosts observed (their facts documents), never from the policy's
# promises: copies written, their newest points, locks read back, integrity checks and drills.
