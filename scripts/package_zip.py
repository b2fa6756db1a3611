"""Writes a Lambda zip: each given file at the root of the archive, with its Unix mode.

Usage: python3 scripts/package_zip.py OUT.zip FILE [FILE...]

Lambda extracts a deployment package or a layer with the Unix permissions recorded in the zip,
so `bootstrap` must be stored as an executable (0755). Entries are written in the order given,
with a fixed timestamp, so the same inputs give the same bytes.
"""

import os
import stat
import sys
import zipfile

# Zip cannot store times before 1980; a fixed one keeps the archive reproducible.
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def entry_mode(path: str) -> int:
    """0755 for an executable, 0644 otherwise: what Lambda needs, nothing of the builder's umask."""
    executable = os.stat(path).st_mode & stat.S_IXUSR
    return 0o755 if executable else 0o644


def write_zip(out: str, files: list[str]) -> None:
    names = [os.path.basename(f) for f in files]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        sys.exit(f"package_zip: two files would have the same name at the zip root: {sorted(duplicates)}")
    partial = out + ".partial"
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path, name in zip(files, names):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.create_system = 3  # Unix, so Lambda reads the mode below
            info.external_attr = (stat.S_IFREG | entry_mode(path)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as source:
                archive.writestr(info, source.read())
    # Replace the old archive only once the new one is whole.
    os.replace(partial, out)
    print(f"package_zip: {out}: {', '.join(names)}", file=sys.stderr)


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit("usage: package_zip.py OUT.zip FILE [FILE...]")
    out, files = sys.argv[1], sys.argv[2:]
    for path in files:
        if not os.path.isfile(path):
            sys.exit(f"package_zip: {path} is not a file")
    write_zip(out, files)


if __name__ == "__main__":
    main()
