"""Child-process helper for the multi-process tests: ``python tests/child.py ACTION TARGET ...``.

Actions:
  dump SESSION [NAMESPACE]      print the session's items as JSON
  write SESSION WRITER N        add N items one call at a time, {"writer": W, "n": i}
  crash SESSION N               add N items, print "acked <n>" after each add returns, then
                                wait to be killed
  lease SESSION SECONDS         hold the run lease for SECONDS, print "held" once acquired
"""

from __future__ import annotations

import json
import sys
import time

from engramdb import Session, open_store


def main(argv: list[str]) -> None:
    action, target, session_id, *rest = argv
    namespace = rest[0] if action == "dump" and rest else "default"
    session = Session(session_id, open_store(target), namespace=namespace)
    if action == "dump":
        print(json.dumps(session.get_items(), ensure_ascii=False))
    elif action == "write":
        writer, count = int(rest[0]), int(rest[1])
        for n in range(count):
            session.add_items([{"writer": writer, "n": n}])
    elif action == "crash":
        for n in range(int(rest[0])):
            session.add_items([{"n": n, "payload": "x" * 100}])
            print(f"acked {n}", flush=True)
        time.sleep(60)
    elif action == "lease":
        with session.run_lease(ttl=30, wait=30):
            print("held", flush=True)
            time.sleep(float(rest[0]))
    else:
        raise SystemExit(f"unknown action {action}")


if __name__ == "__main__":
    main(sys.argv[1:])
