"""The demo's CDP and array infrastructure, all below ROOT: two btrfs filesystems on loop devices
(the source host's and the replica host's), an sshd for the replica host demo-replica (root, for
btrfs receive), a PostgreSQL cluster for demo-db with WAL archiving switched on, and on the
source's filesystem the two volumes of demo-web's array dataset and its tape library's directory.

    python scripts/demo_cdp.py start ROOT   # make what is missing, start what is stopped
    python scripts/demo_cdp.py stop ROOT    # stop, unmount and detach what start made

start writes ROOT/replica.json (address, port and known_hosts line of the replica's sshd) and
ROOT/postgresql.json (data directory, port and socket directory of the cluster), which the demo
inventory reads. It reuses the system tests' helpers (tests/system), so the demo runs what the
tests prove. Idempotent both ways: start on a running instance only checks it; stop undoes only
what its records (ROOT/state) and its images name, and is a no-op on a root never started.
The images stay: a later start mounts them again, and `make demo-clean` removes them.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "system"))

from databases.db_helpers import chown_tree, free_port as free_loopback_port, pg_bindir, pg_env, pg_initdb  # noqa: E402
from fleet.sshd import (  # noqa: E402
    PRIVSEP_DIR, SSHD, SSHD_CONFIG, FleetError, SshKey, descendants, free_port, port_is_free, require_openssh,
    ssh_banner, terminate, wait_for_ssh,
)
from hypervisor.libvirtd import stop_pid  # noqa: E402
from snapshot.loop_helpers import must, run  # noqa: E402

from demo_data import documents, orders  # noqa: E402  (beside this script)

IMAGE_MB = 256
REPLICA_HOST = "demo-replica"
# Where restorable.backup.replica_access writes the sources' forced-command keys: demo-replica's
# demo_host_root + agent_root "/root" + /root/.ssh/authorized_keys (inventories/demo).
REPLICA_AUTHORIZED_KEYS = Path("/var/tmp/restorable-demo/hosts/demo-replica/root/root/.ssh/authorized_keys")
# Taken from the top of 127.0.0.x: the test fleets hand out addresses from 127.0.0.2 upwards.
REPLICA_ADDRESSES = [f"127.0.0.{last}" for last in range(250, 200, -1)]
AS_POSTGRES: dict[str, Any] = {"user": "postgres", "group": "postgres", "extra_groups": []}
SAMPLE_FILES = {
    "README.txt": "Files of demo-web: a btrfs snapshot every minute, replicated to demo-replica.\n",
    "notes/today.txt": "Call the supplier about the sprockets.\n",
    **orders(months=6, rows=5000),
}
# The two volumes of an application that must be restored at the same instant: its documents and
# the index that lists them. Small: every export of the group goes to the demo's 16 MB cartridges.
INVOICES = documents(200)
ARRAY_FILES = {
    "documents": INVOICES,
    "index": {"index.txt": "".join(f"{name}\n" for name in sorted(INVOICES))},
}
# demo-db's app database: customers, products and orders with deterministic values (hashes of the
# row number, no random()), made once; the drill's point-in-time restore brings them back.
SEED_SQL = """
CREATE TABLE IF NOT EXISTS customers (
    id int PRIMARY KEY, name text NOT NULL, city text NOT NULL, email text NOT NULL);
CREATE TABLE IF NOT EXISTS products (
    id int PRIMARY KEY, name text NOT NULL, price numeric(10, 2) NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    id serial PRIMARY KEY, item text NOT NULL, quantity int NOT NULL, placed_at timestamptz NOT NULL DEFAULT now(),
    customer_id int REFERENCES customers, product_id int REFERENCES products);
-- A demo state of an earlier version has orders without these two columns.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS customer_id int REFERENCES customers;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS product_id int REFERENCES products;
INSERT INTO customers
    SELECT n, 'Customer ' || n, (ARRAY['Lyon', 'Porto', 'Gdansk', 'Leeds', 'Graz'])[1 + n % 5], 'customer' || n || '@example.com'
    FROM generate_series(1, 5000) AS n ON CONFLICT DO NOTHING;
INSERT INTO products
    SELECT n, 'Product ' || substr(md5(n::text), 1, 8), 1 + (abs(hashtext(n::text)) % 50000) / 100.0
    FROM generate_series(1, 300) AS n ON CONFLICT DO NOTHING;
INSERT INTO orders (item, quantity, placed_at, customer_id, product_id)
    SELECT 'Product ' || substr(md5((1 + n % 300)::text), 1, 8), 1 + abs(hashtext('q' || n)) % 20,
           timestamptz '2026-01-01' + n * interval '13 minutes', 1 + abs(hashtext('c' || n)) % 5000, 1 + n % 300
    FROM generate_series(1, 40000) AS n WHERE NOT EXISTS (SELECT 1 FROM orders WHERE customer_id IS NOT NULL);
"""


def write_json(path: Path, data: dict[str, Any]) -> None:
    # Through a temporary file: the inventory's lookup never reads half a file.
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


def read_json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


# --------------------------------------------------------------------------- processes by PID

def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:][:1] != b"Z"


def runs_with(pid: int, argument: str) -> bool:
    """Whether the live process `pid` names `argument` in its command line: a recorded PID may have
    been reused. A substring test, because sshd rewrites its argv into one string."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return alive(pid) and f" {argument} ".encode() in cmdline + b" "


def stop_tree(pid: int) -> None:
    """Stop a daemon an earlier run started, then the sessions it forked: they call setsid, so no
    process group holds them, and they outlive the listener."""
    sessions = descendants(pid)
    stop_pid(pid)  # first, so that no new session starts meanwhile
    for each in sessions:
        stop_pid(each)


# --------------------------------------------------------------------------- btrfs on loop devices

class LoopFilesystem:
    """A btrfs filesystem in a sparse image below ROOT, attached to a loop device and mounted below ROOT."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.image = root / f"{name}-fs.img"
        self.mountpoint = root / f"{name}-fs"
        self.record = root / "state" / f"{name}-fs.loop"

    def start(self) -> None:
        if not self.image.exists():
            make_image(self.image)
            print(f"{self.name}-fs: btrfs image {self.image} made ({IMAGE_MB} MB, sparse)")
        devices = self.attached()
        device = devices[0] if devices else self.attach()
        mounted = mount_source(self.mountpoint)
        if mounted is None:
            self.mountpoint.mkdir(parents=True, exist_ok=True)
            must(["mount", "-t", "btrfs", device, self.mountpoint])
            print(f"{self.name}-fs: {device} mounted at {self.mountpoint}")
        elif mounted != device:
            raise RuntimeError(f"{self.mountpoint} holds {mounted}, not {device}: unmount it first")

    def attach(self) -> str:
        device = must(["losetup", "--find", "--show", self.image]).strip()
        self.record.write_text(device + "\n")
        print(f"{self.name}-fs: {self.image} attached to {device}")
        return device

    def attached(self) -> list[str]:
        """Our loop devices: the recorded one and any other backed by our image (a lost record
        must not leave one attached), each checked against the image (devices are reused)."""
        recorded = self.record.read_text().split() if self.record.exists() else []
        listed = run(["losetup", "--noheadings", "--output", "NAME", "--associated", self.image]).stdout.split()
        return [d for d in dict.fromkeys(recorded + listed) if backing_file(d) == self.image.resolve()]

    def stop(self) -> bool:
        if not unmount(self.mountpoint, self.name):
            print(f"{self.name}-fs: loop device kept while mounted; stop again once it is free")
            return False
        ok = True
        for device in self.attached():
            detached = run(["losetup", "--detach", device]).returncode == 0
            ok = ok and detached
            print(f"{self.name}-fs: {device} {'detached' if detached else 'could not be detached'}")
        if ok:
            self.record.unlink(missing_ok=True)
        return ok


def make_image(image: Path) -> None:
    # mkfs on the file itself, then a rename: an image that exists is a whole filesystem.
    temporary = image.with_suffix(".new")
    with open(temporary, "wb") as handle:
        handle.truncate(IMAGE_MB * 1024 * 1024)
    must(["mkfs.btrfs", "-q", "-f", temporary])
    os.replace(temporary, image)


def backing_file(device: str) -> Path | None:
    out = run(["losetup", "--noheadings", "--output", "BACK-FILE", device]).stdout.strip()
    return Path(out).resolve() if out else None


def mount_source(mountpoint: Path) -> str | None:
    out = run(["findmnt", "--noheadings", "--output", "SOURCE", "--mountpoint", mountpoint]).stdout.strip()
    return out or None


def unmount(mountpoint: Path, name: str) -> bool:
    if mount_source(mountpoint) is None:
        print(f"{name}-fs: not mounted")
        return True
    run(["fsfreeze", "--unfreeze", mountpoint])  # a frozen filesystem would block the unmount
    for _attempt in range(20):  # a process of the playbook may still be leaving it
        if run(["umount", mountpoint]).returncode == 0:
            print(f"{name}-fs: {mountpoint} unmounted")
            return True
        time.sleep(0.25)
    holders = " ".join(run(["fuser", "-m", mountpoint]).stdout.split()) or "unknown"
    print(f"{name}-fs: {mountpoint} busy, cannot be unmounted (used by PIDs {holders})")
    return False


def prepare_source(mountpoint: Path) -> None:
    """The subvolume demo-web's files-cdp dataset protects, with sample files, and its snapshot directory."""
    data = mountpoint / "data"
    if not data.exists():
        must(["btrfs", "subvolume", "create", data])
        print(f"source-fs: subvolume {data} created")
    for name, text in SAMPLE_FILES.items():
        path = data / name
        if not path.exists():  # the demo's own changes stay
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    (mountpoint / ".snapshots").mkdir(mode=0o700, exist_ok=True)


def prepare_array(mountpoint: Path) -> None:
    """The volumes of demo-web's files-array group (snapshotted together, exported to tape) and the
    directory of the demo's tape library, on btrfs (its WORM pools need the append-only attribute)."""
    for volume, files in ARRAY_FILES.items():
        path = mountpoint / "array" / volume
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            must(["btrfs", "subvolume", "create", path])
            print(f"source-fs: subvolume {path} created")
        for name, text in files.items():
            if not (path / name).exists():
                (path / name).write_text(text)
    (mountpoint / "vtl").mkdir(mode=0o700, exist_ok=True)


def prepare_replica(mountpoint: Path) -> None:
    # replica_access makes each source dataset's own directory below this one.
    (mountpoint / "replicas").mkdir(mode=0o700, exist_ok=True)


# --------------------------------------------------------------------------- the replica's sshd

class ReplicaSshd:
    """demo-replica's sshd, on a 127.0.0.x address of its own, as root; it lets in only the keys
    restorable.backup.replica_access writes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = root / "replica-sshd"
        self.config = self.base / "sshd_config"
        self.host_key = SshKey(self.base / "ssh_host_ed25519_key")
        self.record = root / "state" / "sshd.pid"

    def running_pid(self) -> int | None:
        pid = read_pid(self.record)
        return pid if pid is not None and runs_with(pid, str(self.config)) else None

    def start(self, previous: dict[str, Any]) -> dict[str, Any]:
        """Start unless running; the address, port and host key line the inventory needs."""
        require_openssh()
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)  # /run may be fresh after a reboot
        if not self.host_key.private.exists():
            SshKey.generate(self.host_key.private, f"host key of {REPLICA_HOST}")
        pid = self.running_pid()
        if pid is not None and previous.get("address") and ssh_banner(previous["address"], int(previous["port"])):
            address, port = previous["address"], int(previous["port"])
            print(f"{REPLICA_HOST} sshd: already running on {address}:{port}")
        else:
            if pid is not None:  # running, but where is no longer known: start afresh
                self.stop()
            address, port = choose_endpoint(previous)
            self.launch(address, port)
            print(f"{REPLICA_HOST} sshd: listening on {address}:{port} (pid {self.running_pid()})")
        return {"host": REPLICA_HOST, "address": address, "port": port,
                "known_hosts": known_hosts_line(address, port, self.host_key)}

    def launch(self, address: str, port: int) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.config.write_text(f"# {REPLICA_HOST} of the demo (scripts/demo_cdp.py), from the test fleet's template.\n"
                               + SSHD_CONFIG.format(name=REPLICA_HOST, address=address, port=port,
                                                    host_key=self.host_key.private, pid_file="none",
                                                    authorized_keys=REPLICA_AUTHORIZED_KEYS,
                                                    data_dir=self.root / "replica-fs"))
        must([SSHD, "-t", "-f", self.config])
        log = self.base / "sshd.log"
        with open(log, "ab") as output:
            # -D: the daemon is this process, whose PID we record (PidFile none: sshd would write it late).
            process = subprocess.Popen([SSHD, "-D", "-f", self.config, "-E", log], stdin=subprocess.DEVNULL,
                                       stdout=output, stderr=output, start_new_session=True)
        self.record.write_text(f"{process.pid}\n")
        try:
            wait_for_ssh(address, port, timeout=10.0, alive=lambda: process.poll() is None)
        except FleetError as exc:
            terminate(process)
            raise FleetError(f"{exc}; see {log}") from None

    def stop(self) -> bool:
        pid = self.running_pid()
        if pid is None:
            print(f"{REPLICA_HOST} sshd: not running")
        else:
            stop_tree(pid)
            print(f"{REPLICA_HOST} sshd: stopped (pid {pid})")
        self.record.unlink(missing_ok=True)
        return True


def choose_endpoint(previous: dict[str, Any]) -> tuple[str, int]:
    """The previous start's address and port when still free (so the inventory's known_hosts line
    stays the same), else the first address whose port 22 is free, else a free port."""
    if previous.get("address") and port_is_free(previous["address"], int(previous["port"])):
        return previous["address"], int(previous["port"])
    for address in REPLICA_ADDRESSES:
        if port_is_free(address, 22):
            return address, 22
    return REPLICA_ADDRESSES[0], free_port(REPLICA_ADDRESSES[0])  # port 22 is taken on every address


def known_hosts_line(address: str, port: int, key: SshKey) -> str:
    kind, blob = key.public.read_text().split()[:2]
    host = address if port == 22 else f"[{address}]:{port}"
    return f"{host} {kind} {blob}"


# --------------------------------------------------------------------------- PostgreSQL

class DemoPostgres:
    """demo-db's cluster, owned by postgres, on its own port and socket directory (no TCP)."""

    def __init__(self, root: Path) -> None:
        self.base = root / "postgresql"
        self.data = self.base / "data"
        self.socket_dir = self.base / "socket"
        self.settings = self.data / "restorable-demo.conf"

    def port(self) -> int:
        found = re.search(r"^port = (\d+)$", self.settings.read_text(), re.MULTILINE)
        if not found:
            raise RuntimeError(f"no port in {self.settings}")
        return int(found.group(1))

    def as_postgres(self, argv: list[Any], check: bool = True) -> subprocess.CompletedProcess[str]:
        # Its own session: a Ctrl-C of `make demo` must not reach the server pg_ctl starts.
        result = subprocess.run([str(pg_bindir() / argv[0])] + [str(a) for a in argv[1:]], env=pg_env(self.base),
                                cwd=self.base, capture_output=True, text=True, check=False, timeout=120,
                                start_new_session=True, **AS_POSTGRES)
        if check and result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stdout}{result.stderr}")
        return result

    def psql(self, sql: str, database: str = "postgres") -> str:
        return self.as_postgres(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", self.socket_dir,
                                 "-p", self.port(), "-U", "postgres", "-d", database, "-c", sql]).stdout.strip()

    def running(self) -> bool:
        return self.data.is_dir() and self.as_postgres(["pg_ctl", "status", "-D", self.data], check=False).returncode == 0

    def start(self) -> dict[str, Any]:
        self.initdb()
        if self.running():
            print(f"postgresql: already running on port {self.port()}")
        else:
            self.as_postgres(["pg_ctl", "start", "-w", "-t", "60", "-D", self.data, "-l", self.base / "postgresql.log"])
            print(f"postgresql: started on port {self.port()}, socket in {self.socket_dir}")
        self.seed()
        return {"data_directory": str(self.data), "port": self.port(), "socket_dir": str(self.socket_dir)}

    def initdb(self) -> None:
        """Once: a data directory without PG_VERSION is an earlier attempt that failed."""
        if (self.data / "PG_VERSION").exists():
            return
        shutil.rmtree(self.data, ignore_errors=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        chown_tree(self.base, "postgres")
        pg_initdb(self.data, self.base)
        self.settings.write_text(cluster_settings(free_loopback_port(), self.socket_dir))
        shutil.chown(self.settings, "postgres", "postgres")
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(f"include '{self.settings.name}'\n")
        print(f"postgresql: cluster made in {self.data}")

    def seed(self) -> None:
        if self.psql("SELECT count(*) FROM pg_database WHERE datname = 'app'") == "0":
            self.psql("CREATE DATABASE app")
        self.psql(SEED_SQL, database="app")

    def stop(self) -> bool:
        if not self.running():
            print("postgresql: not running")
            return True
        for mode in ("fast", "immediate"):  # immediate: crash recovery at the next start, nothing left running
            if self.as_postgres(["pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", self.data], check=False).returncode == 0:
                print(f"postgresql: stopped ({mode})")
                return True
        print("postgresql: could not be stopped")
        return False


def cluster_settings(port: int, socket_dir: Path) -> str:
    # Settings in postgresql.conf, not on the command line: ALTER SYSTEM (postgresql.auto.conf)
    # must be able to override archive_command, and command-line options beat it.
    return (
        "# The demo cluster of demo-db (scripts/demo_cdp.py): its own port and socket, no TCP.\n"
        f"port = {port}\n"
        f"unix_socket_directories = '{socket_dir}'\n"
        "listen_addresses = ''\n"
        "max_connections = 30\n"
        "shared_buffers = 32MB\n"
        "# archive_mode is read at server start only, so it is on from the start. An empty\n"
        "# archive_command keeps the WAL until restorable.backup sets one (ALTER SYSTEM, reload);\n"
        "# a failing command would only fill the log.\n"
        "wal_level = replica\n"
        "archive_mode = on\n"
        "archive_command = ''\n"
    )


# --------------------------------------------------------------------------- start and stop

def filesystems(root: Path) -> tuple[LoopFilesystem, LoopFilesystem]:
    return LoopFilesystem(root, "source"), LoopFilesystem(root, "replica")


def start(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # postgres enters it to reach its data directory
    (root / "state").mkdir(mode=0o700, exist_ok=True)
    source, replica = filesystems(root)
    source.start()
    prepare_source(source.mountpoint)
    prepare_array(source.mountpoint)
    replica.start()
    prepare_replica(replica.mountpoint)
    write_json(root / "replica.json", ReplicaSshd(root).start(read_json(root / "replica.json")))
    write_json(root / "postgresql.json", DemoPostgres(root).start())
    print(f"demo CDP infrastructure ready below {root}")


def stop(root: Path) -> bool:
    """Every step, whatever the one before did; False when anything is left."""
    source, replica = filesystems(root)
    results = [DemoPostgres(root).stop(), ReplicaSshd(root).stop(), source.stop(), replica.stop()]
    return all(results)


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        print(__doc__, file=sys.stderr)
        return 2
    root = Path(argv[2]).resolve()
    if argv[1] == "start":
        start(root)
        return 0
    return 0 if stop(root) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
