#!/usr/bin/env python3
"""Turn the extension's shared library into a loadable ``kafkars.duckdb_extension``.

DuckDB reads a 534-byte metadata footer at the end of an extension file: a WebAssembly-style
custom section header naming ``duckdb_signature``, eight 32-byte NUL-padded fields, and a
256-byte signature (all zeros: the extension is unsigned, so DuckDB needs ``-unsigned`` or
``allow_unsigned_extensions``). The fields, in file order, are three unused ones, the ABI type,
the extension version, the C API version, the platform and the magic value ``4``.

``C_STRUCT`` with C API ``v1.5.6`` is the stable ABI: the file loads in every DuckDB from
1.5.6 on (the CLI 1.5.6 and the Python 2.0 package alike).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

SECTION_HEADER = b"\x00\x93\x04\x10duckdb_signature\x80\x04"
FIELD_SIZE = 32
SIGNATURE_SIZE = 256
ABI_TYPE = "C_STRUCT"
C_API_VERSION = "v1.5.6"


def field(text: str) -> bytes:
    """One NUL-padded footer field."""
    raw = text.encode("ascii")
    if len(raw) > FIELD_SIZE:
        raise ValueError(f"footer field {text!r} is longer than {FIELD_SIZE} bytes")
    return raw.ljust(FIELD_SIZE, b"\x00")


def duckdb_platform() -> str:
    """DuckDB's name for this platform, e.g. ``linux_amd64``."""
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine
    )
    system = {"darwin": "osx"}.get(sys.platform, sys.platform.rstrip("0123456789"))
    return f"{system}_{arch}"


def footer(extension_version: str, target_platform: str) -> bytes:
    """The whole 534-byte footer."""
    fields = [
        field(""),
        field(""),
        field(""),
        field(ABI_TYPE),
        field(extension_version),
        field(C_API_VERSION),
        field(target_platform),
        field("4"),
    ]
    data = SECTION_HEADER + b"".join(fields) + bytes(SIGNATURE_SIZE)
    assert len(data) == 534, len(data)
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", type=Path, help="the built cdylib (libkafkars.so)")
    parser.add_argument("output", type=Path, help="where to write kafkars.duckdb_extension")
    parser.add_argument("--version", required=True, help="extension version, e.g. v0.1.0")
    parser.add_argument("--platform", default=duckdb_platform(), help="DuckDB platform name")
    args = parser.parse_args()

    if args.output.name != "kafkars.duckdb_extension":
        # DuckDB derives the entry point symbol from the file name.
        parser.error("the output file must be named kafkars.duckdb_extension")
    library = args.library.read_bytes()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    partial = args.output.with_suffix(".partial")
    partial.write_bytes(library + footer(args.version, args.platform))
    os.replace(partial, args.output)
    size = args.output.stat().st_size
    print(f"wrote {args.output} ({size} bytes, {args.platform}, C API {C_API_VERSION})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
