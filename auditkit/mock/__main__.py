"""`python -m auditkit.mock`: the mock SUT in its own process (what `MockProcess` starts).

Prints the base URL as one line on stdout once it accepts connections, then serves until
SIGTERM/SIGINT (or, with --exit-on-stdin-eof, until its parent closes our stdin). The mock's
settings come as MockConfig JSON (--config-json); nothing secret is involved.
Exit codes: 0 stopped, 2 bad settings, 3 cannot listen.
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from auditkit.config import MockConfig
from auditkit.errors import EXIT_INPUT, EXIT_SETUP, InputError, SetupError
from auditkit.mock.server import serve_forever


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m auditkit.mock", description="Serve auditkit's mock SUT."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (the default)")
    parser.add_argument("--config-json", default="{}", help="MockConfig as JSON")
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="stop when stdin closes (the parent is gone)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the mock until stopped; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        cfg = MockConfig.model_validate_json(args.config_json)
    except ValidationError as exc:
        print(f"mock config: {' '.join(str(exc).split())[:300]}", file=sys.stderr)
        return EXIT_INPUT

    def announce(url: str) -> None:
        print(url, flush=True)

    try:
        serve_forever(
            cfg,
            args.host,
            args.port,
            on_ready=announce,
            until_stdin_closes=args.exit_on_stdin_eof,
        )
    except SetupError as exc:
        print(exc, file=sys.stderr)
        return EXIT_SETUP
    except InputError as exc:  # behaviour.prepopulate names a dataset that cannot be read
        print(f"mock config: {exc}", file=sys.stderr)
        return EXIT_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
