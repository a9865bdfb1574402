"""Generate the man page and the shell completion from larappp's argument parser.

    python scripts/gen_docs.py [OUTDIR]     (default build/docs; `make man`)

Writes OUTDIR/man1/larappp.1 (argparse-manpage) and OUTDIR/completion/larappp.bash and
larappp.zsh (argcomplete: the script asks `larappp` itself, so it follows the parser).
Both tools are the optional extra `larappp[docs]`.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from larappp import __version__
from larappp.cli import build_parser

MAN_SECTIONS = {
    "project_name": "larappp",
    "version": __version__,
    "url": "https://github.com/larappp/larappp",
    "manual_title": "larappp manual",
    "description": (
        "larappp brings up PPP sessions over a u-blox LARA-R6 module's serial ports: it prepares "
        "the module, dials each PDP context, runs PPP (pppd or its own engine), sets addresses, "
        "routes and DNS, keeps the links up and undoes everything on `larappp down`. The common "
        "options go before or after the subcommand."
    ),
}


def generate(outdir: Path) -> list[Path]:
    """Write the man page and the completion scripts; return their paths."""
    try:
        import argcomplete
        from build_manpages.manpage import Manpage
    except ImportError as exc:
        raise SystemExit(f"gen_docs: {exc.name} is missing: pip install 'larappp[docs]'") from None
    man = outdir / "man1" / "larappp.1"
    man.parent.mkdir(parents=True, exist_ok=True)
    man.write_text(str(Manpage(build_parser(), _data=dict(MAN_SECTIONS))))
    written = [man]
    for shell in ("bash", "zsh"):
        path = outdir / "completion" / f"larappp.{shell}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(argcomplete.shellcode(["larappp"], shell=shell))
        written.append(path)
    return written


def main() -> int:
    outdir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "docs"
    for path in generate(outdir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
