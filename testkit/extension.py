"""DuckDB's extension file format in tests: the metadata footer DuckDB appends and checks."""

from __future__ import annotations

from pathlib import Path

#: The footer's start: a protobuf-like tag and the name of the signature section.
FOOTER_MAGIC = b"\x00\x93\x04\x10duckdb_signature\x80\x04"
#: Eight 32-byte, NUL-padded text fields, then the 256-byte signature (DuckDB's
#: ``ParsedExtensionMetaData``, see DuckDB's ``extension_load.cpp``).
FIELDS, FIELD_BYTES, SIGNATURE_BYTES = 8, 32, 256


def footer_fields(extension: Path) -> list[str]:
    """The footer's eight text fields, in file order: three unused, then the ABI type
    (``C_STRUCT``), the extension's version, the DuckDB (C API) version it targets, the
    platform, and the metadata version.

    Raises ``AssertionError`` when the file does not end with a DuckDB footer.
    """
    size = len(FOOTER_MAGIC) + FIELDS * FIELD_BYTES + SIGNATURE_BYTES
    tail = extension.read_bytes()[-size:]
    assert tail[: len(FOOTER_MAGIC)] == FOOTER_MAGIC, f"{extension} has no DuckDB footer"
    fields = tail[len(FOOTER_MAGIC) : len(FOOTER_MAGIC) + FIELDS * FIELD_BYTES]
    return [
        fields[i * FIELD_BYTES : (i + 1) * FIELD_BYTES].rstrip(b"\0").decode()
        for i in range(FIELDS)
    ]
