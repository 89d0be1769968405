"""Real hosts for the system tests: sshd daemons on loopback addresses and a systemd-nspawn
container. The fixtures live in ``plugin``; ``tests/system/conftest.py`` registers it."""
