"""`python -m mock_model serve [--port N] [--scenario S] [--reply TEXT] [--home DIR]`: a mock model for
running real agent CLIs offline with no account. Prints, per CLI, the env lines that point it here (and
writes their private config under --home), then serves until interrupted."""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import threading
from pathlib import Path

from mock_model import agents, script
from mock_model.server import MockModel

SCENARIOS = {
    "text": lambda a: script.text(a.reply),
    "write": lambda a: script.write_file("hello.txt", "hello from the mock\n", a.reply),
    "question": lambda a: script.question("QUESTION: which colour should it be?", a.reply),
    "slow": lambda a: script.slow(a.reply, 30.0),
    "error": lambda a: script.error(529),
    "history": lambda a: script.history(),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mock_model")
    sub = ap.add_subparsers(dest="verb", required=True)
    s = sub.add_parser("serve", help="serve until interrupted; print each CLI's env lines")
    s.add_argument("--port", type=int, default=0, help="default: an ephemeral port")
    s.add_argument("--scenario", choices=sorted(SCENARIOS), default="text")
    s.add_argument("--reply", default="Hello from the mock model.", help="the text answer")
    s.add_argument("--home", type=Path, help="where each CLI's private HOME goes (default: a temp dir)")
    s.add_argument("--cli", choices=agents.CLIS, action="append", help="only these CLIs (repeatable)")
    args = ap.parse_args(argv)
    home = args.home or Path(tempfile.mkdtemp(prefix="mock-model-"))
    mock = MockModel(SCENARIOS[args.scenario](args), port=args.port).start()
    print(f"# mock model at {mock.url} (Anthropic /v1/messages, OpenAI /v1/responses, /v1/chat/completions)")
    for cli in args.cli or agents.CLIS:
        env = agents.setup(cli, mock.url, home / cli)
        print(f"# {cli}: private HOME {home / cli}")
        print("env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + f" {cli} ...")
    sys.stdout.flush()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        mock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
