"""Type stubs for the compiled module ``kafkars._internal``."""

__version__: str

def librdkafka_version() -> str:
    """The version of librdkafka compiled into kafkars."""
