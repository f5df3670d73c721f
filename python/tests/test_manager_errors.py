"""ConsumerManager and SourceTopic refuse bad arguments with errors that say what and which;
a manager leaves no consumer group and no committed offset behind."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from kafkars import ConsumerManager, KafkarsError, SourceTopic
from testkit.kafka import TopicFactory, round_robin
from testkit.scan import poll_count


@dataclass(frozen=True)
class Names:
    topic: str
    missing: str
    brokers: str


def manager(names: Names, **overrides: Any) -> ConsumerManager:
    """A manager over ``names.topic`` from the earliest offset, with ``overrides``."""
    arguments: dict[str, Any] = {
        "config": {"bootstrap.servers": names.brokers},
        "topics": [SourceTopic.from_earliest(names.topic)],
        **overrides,
    }
    return ConsumerManager(**arguments)


def refused_config(key: str) -> Callable[[Names], object]:
    return lambda n: manager(n, config={"bootstrap.servers": n.brokers, key: "true"})


def poll_with(timeout_ms: object) -> Callable[[Names], object]:
    def call(names: Names) -> object:
        with manager(names) as m:
            return m.poll(timeout_ms=timeout_ms)

    return call


@dataclass(frozen=True)
class Case:
    """A call that must fail, the exception type, and substrings of its message (``{topic}``
    and ``{missing}`` are filled in)."""

    call: Callable[[Names], object]
    error: type[Exception]
    expected: tuple[str, ...] = ()


CASES = {
    "batch-size-zero": Case(lambda n: manager(n, batch_size=0), ValueError, ("batch_size",)),
    "batch-size-negative": Case(lambda n: manager(n, batch_size=-5), ValueError, ("batch_size",)),
    "batch-size-text": Case(lambda n: manager(n, batch_size="10"), TypeError),
    "no-topics": Case(lambda n: manager(n, topics=[]), ValueError, ("topics",)),
    "topic-name-not-source-topic": Case(
        lambda n: manager(n, topics=[n.topic]), TypeError, ("SourceTopic",)
    ),
    "topics-a-string": Case(lambda n: manager(n, topics=n.topic), TypeError, ("SourceTopic",)),
    "negative-relative-time": Case(
        lambda n: SourceTopic.from_relative_time(n.topic, -1), ValueError
    ),
    "timestamp-not-a-number": Case(
        lambda n: SourceTopic.from_timestamp(n.topic, "2024-01-01"), TypeError
    ),
    "cutoff-not-a-number": Case(lambda n: manager(n, cutoff_ms="now"), TypeError),
    "config-not-a-mapping": Case(
        lambda n: manager(n, config=f"bootstrap.servers={n.brokers}"), TypeError
    ),
    "auto-commit": Case(refused_config("enable.auto.commit"), ValueError, ("enable.auto.commit",)),
    "offset-store": Case(
        refused_config("enable.auto.offset.store"), ValueError, ("enable.auto.offset.store",)
    ),
    "auto-create-topics": Case(
        refused_config("allow.auto.create.topics"), ValueError, ("allow.auto.create.topics",)
    ),
    "max-buffer-bytes-too-small": Case(
        lambda n: manager(n, max_buffer_bytes=1024), ValueError, ("max_buffer_bytes",)
    ),
    "idle-timeout-negative": Case(
        lambda n: manager(n, idle_timeout_ms=-1), ValueError, ("idle_timeout_ms",)
    ),
    "poll-timeout-not-a-number": Case(poll_with("1s"), TypeError),
    "unknown-topic": Case(
        lambda n: manager(n, topics=[SourceTopic.from_earliest(n.missing)]),
        KafkarsError,
        ("{missing}",),
    ),
    "unknown-topic-among-others": Case(
        lambda n: manager(
            n, topics=[SourceTopic.from_earliest(n.topic), SourceTopic.from_latest(n.missing)]
        ),
        KafkarsError,
        ("{missing}",),
    ),
}


def attempt(case: Case, names: Names) -> None:
    """Make ``case``'s call; a manager made after all (a failing case) is closed again."""
    made = case.call(names)
    if isinstance(made, ConsumerManager):
        made.close()


# KafkarsError is the package's own exception, a plain Exception subclass.
def test_kafkars_error_is_an_exception() -> None:
    assert issubclass(KafkarsError, Exception)
    assert not issubclass(KafkarsError, (ValueError, TypeError))


# Each bad argument fails at once with the documented exception type and a message naming the
# parameter (or the missing topic); no topic is created.
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_manager_bad_arguments(topics: TopicFactory, brokers: str, case: Case) -> None:
    names = Names(
        topic=topics.create("main", partitions=2, messages=round_robin(4, 2)),
        missing=topics.unique_name("missing"),
        brokers=brokers,
    )
    with pytest.raises(case.error) as raised:
        attempt(case, names)
    message = str(raised.value)
    assert message.strip(), "an empty error message"
    for expected in case.expected:
        assert expected.format(topic=names.topic, missing=names.missing) in message
    assert names.missing not in topics.admin.list_topics(timeout=10).topics


# A manager given a group.id polls, goes live and closes without creating that consumer group
# or committing any offset: the Admin API shows nothing afterwards.
def test_manager_creates_no_group_and_commits_nothing(topics: TopicFactory, brokers: str) -> None:
    topic = topics.create("quiet", partitions=3, messages=round_robin(30, 3))
    group = topics.unique_name("group")
    before = topics.consumer_groups()
    selection = [SourceTopic.from_earliest(topic)]
    settings = {"bootstrap.servers": brokers, "group.id": group}
    with ConsumerManager(config=settings, topics=selection, batch_size=4) as manager:
        assert len(poll_count(manager, 30).records) == 30
        assert manager.is_live()
    # A lookback of 3000 days reaches back before the 2024 history; auto-commit off is fine.
    relative = ConsumerManager(
        config={**settings, "enable.auto.commit": "false"},
        topics=[SourceTopic.from_relative_time(topic, 3000 * 86_400_000)],
    )
    assert len(poll_count(relative, 30).records) == 30
    relative.close()
    after = topics.consumer_groups()
    assert group not in after
    assert after <= before
    assert topics.committed_offsets(group, topic, 3) == [-1001, -1001, -1001]
