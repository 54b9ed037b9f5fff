"""Regenerate the Python code for ``engine.proto``.

Run from anywhere: ``python -m neuroloop.protocol.generate``. The generated files are
committed; ``tests/test_protocol.py`` fails when they are stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROTOCOL_DIR = Path(__file__).resolve().parent
SOURCE_ROOT = PROTOCOL_DIR.parent.parent
PROTO_FILE = PROTOCOL_DIR / "engine.proto"
GENERATED_NAMES = ("engine_pb2.py", "engine_pb2.pyi", "engine_pb2_grpc.py")


def generate(out_root: Path) -> list[Path]:
    """Run protoc on ``engine.proto``, writing the package tree under ``out_root``.

    Args:
        out_root: Directory that plays the role of the source root; the files land in
            ``out_root/neuroloop/protocol/``.

    Returns:
        Paths of the generated files.
    """
    from grpc_tools import protoc  # only the generator needs grpcio-tools

    out_root.mkdir(parents=True, exist_ok=True)
    relative_proto = PROTO_FILE.relative_to(SOURCE_ROOT)
    args = [
        "protoc",
        f"-I{SOURCE_ROOT}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        str(relative_proto),
    ]
    status = protoc.main(args)
    if status != 0:
        raise RuntimeError(f"protoc failed on {PROTO_FILE} with status {status}")
    return [out_root / relative_proto.parent / name for name in GENERATED_NAMES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=SOURCE_ROOT, help="source root to write into")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
