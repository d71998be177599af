"""`python -m compose_net.dns serve --project P --records PATH [--state-dir DIR]`: the DNS
server process that `control.start` spawns. Its stderr is the server's log."""

from __future__ import annotations

import argparse
import logging
import sys

from compose_net.dns.server import serve_forever
from compose_net.errors import ComposeNetError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compose_net.dns")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve a project's names in its container namespaces")
    serve.add_argument("--project", required=True)
    serve.add_argument("--records", help="the project summary (default: its state directory's project.json)")
    serve.add_argument("--state-dir", help="where dns.pid and dns.status go")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s dns[%(process)d] %(levelname)s %(message)s")
    try:
        serve_forever(args.project, args.records, args.state_dir)
    except ComposeNetError as exc:
        logging.getLogger("compose_net.dns").error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
