"""Fetch one file out of a pinned npm package tarball, checking the registry's sha512 integrity.

Used by the Dockerfile to take the native Claude Code binary out of its platform package
(@anthropic-ai/claude-code-linux-x64) without needing Node/npm in any image: it is the
same tarball `npm install` downloads, verified against the same `dist.integrity`.

    python3 fetch_npm_binary.py PACKAGE VERSION INTEGRITY MEMBER OUT [--registry URL]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import ssl
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path


def tarball_url(registry: str, package: str, version: str) -> str:
    basename = package.rsplit("/", 1)[-1]
    return f"{registry.rstrip('/')}/{package}/-/{basename}-{version}.tgz"


def download(url: str, dest: Path, attempts: int = 3) -> None:
    ctx = ssl.create_default_context()
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(url, timeout=120, context=ctx) as resp, dest.open("wb") as out:  # noqa: S310
                shutil.copyfileobj(resp, out, 1 << 20)
            return
        except OSError as exc:
            if attempt == attempts:
                raise
            print(f"download failed ({exc}); retrying", file=sys.stderr)
            time.sleep(2 * attempt)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("package")
    ap.add_argument("version")
    ap.add_argument("integrity", help="npm dist.integrity, e.g. sha512-...")
    ap.add_argument("member", help="path inside the tarball, e.g. package/claude")
    ap.add_argument("out", type=Path)
    ap.add_argument("--registry", default=os.environ.get("NPM_CONFIG_REGISTRY") or "https://registry.npmjs.org")
    args = ap.parse_args()

    algo, _, want_b64 = args.integrity.partition("-")
    if algo != "sha512" or not want_b64:
        ap.error("integrity must be an npm sha512-... string")

    url = tarball_url(args.registry, args.package, args.version)
    with tempfile.TemporaryDirectory() as tmp:
        tgz = Path(tmp) / "pkg.tgz"
        print(f"fetching {url}", file=sys.stderr)
        download(url, tgz)
        digest = hashlib.sha512()
        with tgz.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        got_b64 = base64.b64encode(digest.digest()).decode()
        if got_b64 != want_b64:
            print(f"integrity mismatch for {url}: got sha512-{got_b64}", file=sys.stderr)
            return 1
        with tarfile.open(tgz, "r:gz") as tar:
            member = tar.getmember(args.member)
            src = tar.extractfile(member)
            if src is None:
                print(f"{args.member} is not a regular file", file=sys.stderr)
                return 1
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with src, args.out.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    args.out.chmod(0o755)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
