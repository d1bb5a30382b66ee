"""A content-addressed, crash-safe store for generations and judgments.

Each entry is one small JSON file named by the sha256 of its key, written to a temp file and renamed into
place, so a killed run never leaves a half-written entry and concurrent workers never corrupt each other.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


def key_of(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class Store:
    def __init__(self, root: str | Path, kind: str):
        self.root = Path(root) / kind
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            with open(self._path(key), encoding="utf-8") as fh:
                return json.load(fh)
        except (OSError, json.JSONDecodeError):
            return None

    def put(self, key: str, value: dict) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(value, fh, ensure_ascii=False)
        os.replace(tmp, path)


def file_hash(paths: list[Path], cache_root: str | Path | None = None) -> str:
    """sha256 over the contents of ``paths`` (sorted), memoised by (path, size, mtime) under ``cache_root``."""
    paths = sorted(Path(p) for p in paths)
    sig = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    memo = Store(cache_root, "hashes") if cache_root else None
    mkey = key_of(sig)
    if memo is not None:
        hit = memo.get(mkey)
        if hit:
            return hit["sha256"]
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    digest = h.hexdigest()[:24]
    if memo is not None:
        memo.put(mkey, {"sha256": digest, "files": sig})
    return digest
