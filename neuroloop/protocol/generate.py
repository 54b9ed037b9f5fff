"""Regenerate the Python code for ``engine.proto`` and for the NRP-core message packages.

Run from anywhere: ``python -m neuroloop.protocol.generate``. The generated files are
committed; ``tests/test_protocol.py`` and ``tests/test_nrp_protobuf.py`` fail when they are
stale. The message packages (``nrp_protobuf/*.proto``) get message code only, no service.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROTOCOL_DIR = Path(__file__).resolve().parent
SOURCE_ROOT = PROTOCOL_DIR.parent.parent
PROTO_FILE = PROTOCOL_DIR / "engine.proto"
GENERATED_NAMES = ("engine_pb2.py", "engine_pb2.pyi", "engine_pb2_grpc.py")
MESSAGES_DIR = SOURCE_ROOT / "nrp_protobuf"
"""NRP-core's message packages (Dump, EngineTest, NrpGenericProto, Wrappers)."""


def generate(out_root: Path) -> list[Path]:
    """Run protoc on ``engine.proto``, writing the package tree under ``out_root``.

    Args:
        out_root: Directory that plays the role of the source root; the files land in
            ``out_root/neuroloop/protocol/``.

    Returns:
        Paths of the generated files.
    """
    out_root.mkdir(parents=True, exist_ok=True)
    relative_proto = PROTO_FILE.relative_to(SOURCE_ROOT)
    _protoc(out_root, [f"--grpc_python_out={out_root}", str(relative_proto)])
    generated = [out_root / relative_proto.parent / name for name in GENERATED_NAMES]
    for proto in sorted(MESSAGES_DIR.glob("*.proto")):
        relative = proto.relative_to(SOURCE_ROOT)
        _protoc(out_root, [str(relative)])
        stem = out_root / relative.with_suffix("")
        generated += [stem.with_name(f"{proto.stem}_pb2{suffix}") for suffix in (".py", ".pyi")]
    return generated


def _protoc(out_root: Path, args: list[str]) -> None:
    from grpc_tools import protoc  # only the generator needs grpcio-tools

    common = ["protoc", f"-I{SOURCE_ROOT}", f"--python_out={out_root}", f"--pyi_out={out_root}"]
    status = protoc.main([*common, *args])
    if status != 0:
        raise RuntimeError(f"protoc failed on {args[-1]} with status {status}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=SOURCE_ROOT, help="source root to write into")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
