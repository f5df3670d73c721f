"""Fixtures shared by every pytest layer: the real broker and uniquely named topics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testkit.kafka import BROKERS, BrokerUnavailable, TopicFactory, check_broker


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
