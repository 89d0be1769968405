"""Real hypervisors for the host tier's tests: private libvirtd instances (``libvirtd``) running a
minimal Linux guest with qemu-guest-agent (``guest``). The fixtures live in ``plugin``;
``tests/system/conftest.py`` registers it."""
