"""Regenerate the web page's screenshots in docs/img/: ``python -m tests.ui.screenshots``
(starts a server on loopback over a temporary store, seeds it, drives Chromium)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.live_server import ADMIN_KEY, ROOT, start_live_server

from .browser import (
    Offline,
    chromium,
    screenshots,
    seed,
    seed_memory_files,
    sign_in,
    unavailable,
)


def main() -> int:
    reason = unavailable()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "memories"
        server = start_live_server(
            str(Path(tmp) / "data"), embedder="hashing", memory_root=str(root)
        )
        try:
            key = server.register("screenshots")
            ids = seed(server.url, key)
            seed_memory_files(server.url, key, server.store, root)
            with chromium() as browser:
                ctx = Offline(browser, server.url)
                page = ctx.context.new_page()
                sign_in(page, key)
                for path in screenshots(page, ids, ROOT / "docs" / "img", ADMIN_KEY):
                    print(path.relative_to(ROOT))
                ctx.close()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
