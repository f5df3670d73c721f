"""Fixtures shared by every pytest layer: the real broker, uniquely named topics and the real
Schema Registry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testkit.kafka import BROKERS, BrokerUnavailable, TopicFactory, check_broker
from testkit.registry import REGISTRY_URL, RegistryProducer, RegistryUnavailable, check_registry


@pytest.fixture(scope="session")
def brokers() -> str:
    """The address of a running broker. A test that needs one fails when none answers."""
    try:
        check_broker(BROKERS)
    except BrokerUnavailable as error:
        pytest.fail(str(error), pytrace=False)
    return BROKERS


@pytest.fixture
def topics(brokers: str, request: pytest.FixtureRequest) -> Iterator[TopicFactory]:
    """Creates topics named after the test; deletes them when it ends."""
    factory = TopicFactory(brokers=brokers, prefix=f"t-{request.node.name}")
    yield factory
    factory.delete_all()


@pytest.fixture(scope="session")
def schema_registry() -> str:
    """The URL of a running Schema Registry's Confluent API. A test that needs one fails when
    none answers."""
    try:
        check_registry(REGISTRY_URL)
    except RegistryUnavailable as error:
        problem = str(error)
    else:
        return REGISTRY_URL
    # Outside the except block, so the report is the message alone, not a chained traceback.
    pytest.fail(problem, pytrace=False)


@pytest.fixture
def registry(brokers: str, schema_registry: str) -> RegistryProducer:
    """Writes Schema-Registry-framed records (Avro, Protobuf, JSON Schema) and raw ones with
    confluent-kafka's serializers, into topics from the ``topics`` fixture."""
    return RegistryProducer(brokers=brokers, url=schema_registry)
