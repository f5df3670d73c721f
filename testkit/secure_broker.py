"""A private broker with a SASL_SSL listener, for the security tests.

:func:`secure_broker` generates a certificate authority and a broker certificate for
``127.0.0.1``/``localhost`` with the ``openssl`` command line (fresh ones each time, in a
temporary directory), starts the private broker ``KAFKA_INSTANCE=secure`` of
``broker/kafka.sh`` with a SASL_SSL listener (SCRAM-SHA-512 over TLS) beside its PLAINTEXT
one, creates a SCRAM user through the PLAINTEXT listener and waits until that user can log in.
A second CA, which signed nothing the broker holds, serves to test certificate verification.

PLAINTEXT stays the inter-broker and readiness listener, and is where test topics are created
and produced to; only the reader under test goes through SASL_SSL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from testkit.brokers import PrivateBroker, session_lock

#: The private broker's instance name (its data lives in ``.kafka/secure``).
INSTANCE = "secure"
HOST = "127.0.0.1"
#: PLAINTEXT listener; the controller takes the next port.
PLAINTEXT_PORT = 19492
#: SASL_SSL listener.
SASL_SSL_PORT = 19494

#: Only one test session at a time may own the private broker: each restarts it with its own
#: freshly generated certificates. Others wait on this lock (the security tests take about a
#: minute), and fail clearly before pytest's per-test timeout (300 s) would.
SESSION_LOCK_WAIT_S = 240.0


@dataclass(frozen=True)
class SecureBroker:
    """A running broker with a SASL_SSL listener and a SCRAM-SHA-512 user."""

    #: Where test topics are created and produced (PLAINTEXT, no credentials).
    plaintext: str
    #: The SASL_SSL bootstrap address.
    sasl_ssl: str
    username: str
    password: str
    #: The CA that signed the broker's certificate (PEM).
    ca_location: str
    #: A CA generated alongside it that signed nothing the broker holds (PEM).
    other_ca_location: str
    #: How long starting the broker took, in seconds (certificates, start, SCRAM user).
    start_seconds: float

    def config(self, password: str | None = None, ca_location: str | None = "") -> dict[str, str]:
        """librdkafka properties that read through the SASL_SSL listener as the test user.

        ``password`` replaces the user's password; ``ca_location`` replaces the CA
        (``None`` leaves ``ssl.ca.location`` out, so librdkafka falls back to the system's
        trust store, which does not know our CA).
        """
        config = {
            "bootstrap.servers": self.sasl_ssl,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": self.username,
            "sasl.password": self.password if password is None else password,
        }
        ca = self.ca_location if ca_location == "" else ca_location
        if ca is not None:
            config["ssl.ca.location"] = ca
        return config


class SqlExpression(str):
    """A value :func:`sql_map` writes as it is, not as a string literal (e.g.
    ``getvariable('password')``)."""


def sql_map(properties: Mapping[str, str]) -> str:
    """``properties`` as a DuckDB ``MAP {...}`` (for ``config := ...``): string literals, but
    :class:`SqlExpression` values as written."""

    def quote(text: str) -> str:
        if isinstance(text, SqlExpression):
            return str(text)
        return "'" + text.replace("'", "''") + "'"

    return "MAP {" + ", ".join(f"{quote(k)}: {quote(v)}" for k, v in properties.items()) + "}"


def _openssl(*args: str, cwd: Path) -> None:
    """Run ``openssl`` with ``args``; fail with its output if it fails."""
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {result.stderr.strip()}")


def make_ca(directory: Path, name: str) -> Path:
    """Generate a self-signed CA ``<name>.pem`` (key ``<name>.key``) in ``directory``."""
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", f"{name}.key", "-out", f"{name}.pem",
        "-subj", f"/CN=kafkars test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return directory / f"{name}.pem"


def make_broker_keystore(directory: Path, ca: str) -> Path:
    """Generate a broker key and a certificate for 127.0.0.1 and localhost signed by the CA
    ``<ca>.pem``/``<ca>.key``; return the PEM key store Kafka reads (unencrypted PKCS#8 key
    followed by the certificate)."""
    (directory / "broker.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
        "-subj", "/CN=localhost",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "broker.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-set_serial", str(secrets.randbits(63)), "-days", "2",
        "-extfile", "broker.ext", "-out", "broker.pem",
        cwd=directory,
    )  # fmt: skip
    keystore = directory / "broker-keystore.pem"
    keystore.write_text(
        (directory / "broker.key").read_text() + (directory / "broker.pem").read_text()
    )
    return keystore


def broker_properties(keystore: Path) -> str:
    """Broker properties adding the SASL_SSL listener (appended by ``KAFKA_EXTRA_PROPS``;
    they override the generated ``listeners`` lines)."""
    return f"""\
listeners=PLAINTEXT://{HOST}:{PLAINTEXT_PORT},CONTROLLER://{HOST}:{PLAINTEXT_PORT + 1},\
SASL_SSL://{HOST}:{SASL_SSL_PORT}
advertised.listeners=PLAINTEXT://{HOST}:{PLAINTEXT_PORT},SASL_SSL://{HOST}:{SASL_SSL_PORT}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
inter.broker.listener.name=PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=\
org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location={keystore}
listener.name.sasl_ssl.ssl.client.auth=none
"""


def create_scram_user(plaintext: str, username: str, password: str) -> None:
    """Create (or reset) a SCRAM-SHA-512 user through the PLAINTEXT listener."""
    admin = AdminClient({"bootstrap.servers": plaintext})
    upsert = UserScramCredentialUpsertion(
        username, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), password.encode()
    )
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(timeout=30)


def wait_for_login(broker: SecureBroker, limit_s: float = 60.0) -> None:
    """Wait until the user can fetch metadata through SASL_SSL (credentials reach the
    listener through the metadata log, a moment after they are written)."""
    # Quiet: failed attempts would print librdkafka's log lines to stderr.
    admin = AdminClient({**broker.config(), "log_level": 0})
    deadline = time.monotonic() + limit_s
    while True:
        try:
            admin.list_topics(timeout=5)
            return
        except KafkaException as error:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"user {broker.username} cannot log in at {broker.sasl_ssl} "
                    f"after {limit_s}s: {error}"
                ) from error
            time.sleep(0.2)


@contextlib.contextmanager
def secure_broker() -> Iterator[SecureBroker]:
    """Start the private SASL_SSL broker with fresh certificates and a fresh SCRAM user;
    stop it afterwards. A broker left running by an earlier session is restarted, since its
    certificates are gone."""
    with (
        session_lock(INSTANCE, SESSION_LOCK_WAIT_S),
        tempfile.TemporaryDirectory(prefix="kafkars-tls-") as scratch,
    ):
        started = time.monotonic()
        directory = Path(scratch)
        ca = make_ca(directory, "ca")
        other_ca = make_ca(directory, "other-ca")
        keystore = make_broker_keystore(directory, "ca")
        props = directory / "secure.properties"
        props.write_text(broker_properties(keystore))
        private = PrivateBroker(INSTANCE, PLAINTEXT_PORT, extra_props=props)
        if private.running():
            private.down()
        private.ensure_up()
        try:
            broker = SecureBroker(
                plaintext=f"{HOST}:{PLAINTEXT_PORT}",
                sasl_ssl=f"{HOST}:{SASL_SSL_PORT}",
                username=f"reader-{secrets.token_hex(4)}",
                # Distinctive, so finding it anywhere in an output means a leak.
                password=f"pw-{secrets.token_hex(12)}",
                ca_location=str(ca),
                other_ca_location=str(other_ca),
                start_seconds=0.0,
            )
            create_scram_user(broker.plaintext, broker.username, broker.password)
            wait_for_login(broker)
            yield dataclasses.replace(broker, start_seconds=time.monotonic() - started)
        finally:
            private.down()
