# The README's two commands, on a fresh Debian 12 machine as root (each runs `deps` first):
#   make demo   the demo fleet (inventories/demo) on this machine; state in /var/tmp/restorable-demo
#   make test   every test: sanity, units, lint, system tests
# `make demo-clean` removes the demo's state to start afresh.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
# `test` runs its parts in order and stops at the first failure.
.NOTPARALLEL:

VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
PYTHON_VERSION := 3.11

# ansible-test resolves symlinks and insists on living under ansible_collections/NS/NAME,
# so it runs in a copy of the checkout (tracked and new, not ignored, files). The copy gets a
# repository of its own, or ansible-test would list files from the checkout's, which ignores build/.
COLLECTION_COPY := build/ansible_collections/restorable/backup
ANSIBLE_TEST := cd $(COLLECTION_COPY) && ansible-test

.PHONY: deps demo demo-clean demo-cdp-stop test sanity units lint pytest docs build clean collection-copy

deps:
	scripts/bootstrap

# The demo's hypervisor (a private libvirtd with one VM) and its CDP infrastructure (btrfs
# filesystems on loop devices, the replica's sshd, a PostgreSQL cluster), both below the demo
# root, are stopped whatever the playbook's outcome, also when a start fails half-way. They start
# side by side with the generation of demo-web's web content and demo-db's application files
# (scripts/demo_data.py, once: a later run finds them), which the playbook backs up. The VM boots
# while the playbook plans and applies: it waits for DEMO_HYPERVISOR_ROOT/started before the
# backups (the start's output is in start.log there).
DEMO_HYPERVISOR := $(VENV)/bin/python scripts/demo_hypervisor.py
DEMO_HYPERVISOR_ROOT := /var/tmp/restorable-demo/hypervisor
DEMO_CDP := $(VENV)/bin/python scripts/demo_cdp.py
DEMO_CDP_ROOT := /var/tmp/restorable-demo/cdp
DEMO_DATA := $(VENV)/bin/python scripts/demo_data.py
# The paths of demo-web's www and demo-db's app datasets (inventories/demo/host_vars).
DEMO_WWW := /var/tmp/restorable-demo/hosts/demo-web/srv/www
DEMO_APP := /var/tmp/restorable-demo/hosts/demo-db/var/lib/app
# It ends with the drills' table and the demo's summary, whatever the outcome.
DEMO_PLAYBOOK := ANSIBLE_CALLBACKS_ENABLED=restorable.backup.drill_summary,restorable.backup.demo_summary \
  ansible-playbook -i inventories/demo playbooks/demo.yml

demo: deps
	rc=0; mkdir -p $(DEMO_WWW) $(DEMO_APP) $(DEMO_HYPERVISOR_ROOT); rm -f $(DEMO_HYPERVISOR_ROOT)/started; \
	  $(DEMO_HYPERVISOR) start $(DEMO_HYPERVISOR_ROOT) > $(DEMO_HYPERVISOR_ROOT)/start.log 2>&1 & hypervisor=$$!; \
	  $(DEMO_DATA) www $(DEMO_WWW) app $(DEMO_APP) & data=$$!; \
	  $(DEMO_CDP) start $(DEMO_CDP_ROOT) || rc=$$?; \
	  wait $$data || rc=$$?; \
	  if [ $$rc -eq 0 ]; then $(DEMO_PLAYBOOK) || rc=$$?; fi; \
	  wait $$hypervisor || { rc=$$?; cat $(DEMO_HYPERVISOR_ROOT)/start.log; }; \
	  $(DEMO_CDP) stop $(DEMO_CDP_ROOT) || rc=$$?; \
	  $(DEMO_HYPERVISOR) stop $(DEMO_HYPERVISOR_ROOT) || rc=$$?; \
	  exit $$rc

# Before the demo's state is removed: rm -rf must not walk into its mounted filesystems, and
# their loop devices must not outlive their images. A failing stop stops demo-clean.
demo-cdp-stop:
	$(DEMO_CDP) stop $(DEMO_CDP_ROOT)

# Everything the demo writes is below demo_root (inventories/demo/group_vars/all/main.yml), and
# it leaves nothing running (its schedules are written, not activated): removing that one
# directory starts afresh. A literal path, so that no variable can widen what is removed.
demo-clean: demo-cdp-stop
	$(DEMO_HYPERVISOR) stop $(DEMO_HYPERVISOR_ROOT)
	rm -rf -- /var/tmp/restorable-demo

test: deps sanity units lint pytest

# The copy leaves out collections/, whose only content is the symlink back to the checkout.
collection-copy: deps
	rm -rf $(COLLECTION_COPY)
	mkdir -p $(COLLECTION_COPY)
	git ls-files -z -co --exclude-standard -- . ':!collections' \
	  | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C $(COLLECTION_COPY)
	git init -q $(COLLECTION_COPY)

sanity: collection-copy
	$(ANSIBLE_TEST) sanity --python $(PYTHON_VERSION) --venv --color no

units: collection-copy
	$(ANSIBLE_TEST) units --python $(PYTHON_VERSION) --venv --requirements --color no

# wildcard: git keeps no empty directory, so a fresh clone may lack one of them.
lint: deps
	ansible-lint $(wildcard roles playbooks)

pytest: deps
	mkdir -p tests/output
	pytest --junitxml=tests/output/pytest.xml

docs: deps
	python scripts/gendocs.py

build: deps
	mkdir -p build
	ansible-galaxy collection build --force --output-path build

clean:
	rm -rf build tests/output .pytest_cache
