"""The demo's embedded data, generated on this machine from a fixed seed: nothing is downloaded,
and every machine gets the same bytes.

    python scripts/demo_data.py KIND DIRECTORY [KIND DIRECTORY ...]   # into each DIRECTORY/content

KIND www is demo-web's web content: pages (text), images (random, incompressible), releases that
repeat most of their files, an archived copy of the pages and access logs. About 320 MB on disk,
much less in a restic repository: the repeated files are stored once and the text compresses, so
the demo's summary has a deduplication ratio worth reading. KIND app is demo-db's application
files (about 20 MB): uploaded attachments, some uploaded twice, and monthly CSV exports.

Written once: the tree is built in DIRECTORY/content.partial and renamed to DIRECTORY/content
with its manifest (content/MANIFEST.json) last, so a later run that finds the manifest of this
generator's version returns at once, and an interrupted run starts over. demo_cdp.py imports the
small generators (documents, orders) for the btrfs volumes it fills.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

SEED = 20261203
# Bump when the generated tree changes: a tree of another version is generated again.
VERSION = 1
# One fixed modification time for every file: two fresh machines produce identical trees.
MTIME = 1767225600  # 2026-01-01T00:00:00Z

WORDS = (
    "backup restore policy invoice customer order shipment widget gadget sprocket supplier warehouse "
    "delivery contract quarter revenue budget forecast meeting agenda minutes report summary review "
    "server network storage volume snapshot replica archive retention schedule window operator audit "
    "the a of to and in for on with by from at as is are was be this that which these those "
    "new old first last next every each all some many few more less most least other same "
    "price quantity total discount payment account balance credit debit tax region branch office"
).split()
PAGES = 3000         # site/: ~12 KB of text each
IMAGES = 200         # media/images/: 256 KiB of random bytes each
RELEASES = 6         # downloads/releases/app-1.N: the same bundle, a small changed part each
BUNDLE_MB = 24
LOG_DAYS = 30        # logs/: one access log a day
LOG_LINES = 14000
UPLOADS = 400        # app uploads/: 4 to 64 KiB each
EXPORT_MONTHS = 12   # app exports/: one orders CSV a month


def rng_for(name: str) -> random.Random:
    # One generator per part: adding a part never changes the bytes of another.
    return random.Random(f"{SEED}:{name}")


def sentences(rng: random.Random, count: int) -> list[str]:
    return [" ".join(rng.choices(WORDS, k=rng.randint(6, 18))).capitalize() + "." for _sentence in range(count)]


def text_document(rng: random.Random, pool: list[str], size: int) -> str:
    parts: list[str] = []
    length = 0
    while length < size:
        paragraph = " ".join(rng.choices(pool, k=rng.randint(4, 9)))
        parts.append(paragraph)
        length += len(paragraph) + 2
    return "\n\n".join(parts) + "\n"


def write(path: Path, data: bytes | str) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    path.write_bytes(raw)
    os.utime(path, (MTIME, MTIME))
    return len(raw)


def pages(root: Path) -> int:
    rng = rng_for("pages")
    pool = sentences(rng, 4000)
    total = 0
    for n in range(PAGES):
        body = text_document(rng, pool, 12000)
        total += write(root / "site" / f"section-{n % 24:02d}" / f"page-{n:05d}.html",
                       f"<html><head><title>Page {n}</title></head><body>\n<p>{body}</p>\n</body></html>\n")
    return total


def images(root: Path) -> int:
    rng = rng_for("images")
    return sum(write(root / "media" / "images" / f"photo-{n:04d}.jpg", rng.randbytes(256 * 1024)) for n in range(IMAGES))


def releases(root: Path) -> int:
    """Each release repeats the previous one's bundle but for one changed MiB, as builds do."""
    rng = rng_for("releases")
    bundle = bytearray(rng.randbytes(BUNDLE_MB * 1024 * 1024))
    total = 0
    for n in range(RELEASES):
        start = rng.randrange(0, len(bundle) - 1024 * 1024)
        bundle[start:start + 1024 * 1024] = rng.randbytes(1024 * 1024)
        directory = root / "downloads" / "releases" / f"app-1.{n}"
        total += write(directory / "app.bundle", bytes(bundle))
        total += write(directory / "CHANGES.txt", f"app 1.{n}: one module rebuilt.\n")
    return total


def archive(root: Path) -> int:
    """Last year's copy of the site, byte for byte: stored once by the repository."""
    total = 0
    for source in sorted((root / "site").rglob("*.html")):
        total += write(root / "archive" / "2025" / source.relative_to(root), source.read_bytes())
    return total


def logs(root: Path) -> int:
    rng = rng_for("logs")
    paths = [f"/section-{n % 24:02d}/page-{n:05d}.html" for n in range(0, PAGES, 7)] + ["/media/images/photo-0001.jpg"]
    total = 0
    for day in range(1, LOG_DAYS + 1):
        lines = [f'10.{rng.randint(0, 3)}.{rng.randint(0, 255)}.{rng.randint(1, 254)} - - '
                 f'[{day:02d}/Nov/2026:{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d} +0000] '
                 f'"GET {rng.choice(paths)} HTTP/1.1" {rng.choice((200, 200, 200, 304, 404))} {rng.randint(300, 90000)}\n'
                 for _line in range(LOG_LINES)]
        total += write(root / "logs" / f"access-2026-11-{day:02d}.log", "".join(lines))
    return total


def uploads(root: Path) -> int:
    """Files users attached (random, incompressible), a quarter of them uploaded twice."""
    rng = rng_for("uploads")
    total = 0
    for n in range(UPLOADS):
        data = rng.randbytes(rng.randint(4, 64) * 1024)
        total += write(root / "uploads" / f"{n % 16:02x}" / f"attachment-{n:04d}.bin", data)
        if n % 4 == 0:
            total += write(root / "uploads" / "resent" / f"attachment-{n:04d}-copy.bin", data)
    return total


def exports(root: Path) -> int:
    """The application's nightly CSV exports: text that compresses."""
    return sum(write(root / "exports" / name.replace("orders/", "orders-"), text)
               for name, text in orders(months=EXPORT_MONTHS, rows=8000).items())


KINDS = {"www": (pages, images, releases, archive, logs), "app": (uploads, exports)}


def generate(kind: str, directory: Path) -> Path:
    """The data of KIND in DIRECTORY/content, generated unless this version is there."""
    final = directory / "content"
    manifest = final / "MANIFEST.json"
    if manifest.exists() and json.loads(manifest.read_text()).get("version") == VERSION:
        print(f"demo data: {final} present, kept")
        return final
    started = time.monotonic()
    partial = directory / "content.partial"
    shutil.rmtree(partial, ignore_errors=True)
    sizes = {part.__name__: part(partial) for part in KINDS[kind]}
    write(partial / "MANIFEST.json", json.dumps({"version": VERSION, "seed": SEED, "bytes": sizes}, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)  # another version's tree
    os.replace(partial, final)
    print(f"demo data: {sum(sizes.values()) / 1e6:.0f} MB of {kind} data generated in {final} "
          f"in {time.monotonic() - started:.1f} s")
    return final


def documents(count: int) -> dict[str, str]:
    """Invoices, a few KB of text each, and the index that lists them: the array dataset's two volumes."""
    rng = rng_for("documents")
    pool = sentences(rng, 300)
    files = {f"invoice-{n:04d}.txt": f"Invoice {n:04d}\n\n" + text_document(rng, pool, 3000) for n in range(1, count + 1)}
    return files


def orders(months: int, rows: int) -> dict[str, str]:
    """Monthly order exports (CSV): the CDP dataset's shared files."""
    rng = rng_for("orders")
    items = ("widget", "gadget", "sprocket", "bracket", "hinge", "gasket")
    files = {}
    for month in range(1, months + 1):
        lines = [f"{month * rows + n},{rng.choice(items)},{rng.randint(1, 40)},{rng.randint(100, 99999) / 100:.2f}\n"
                 for n in range(rows)]
        files[f"orders/2026-{month:02d}.csv"] = "id,item,quantity,price\n" + "".join(lines)
    return files


def main(argv: list[str]) -> int:
    pairs = list(zip(argv[1::2], argv[2::2]))
    if not pairs or len(argv) % 2 == 0 or any(kind not in KINDS for kind, _directory in pairs):
        print(__doc__, file=sys.stderr)
        return 2
    for kind, directory in pairs:
        generate(kind, Path(directory))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
