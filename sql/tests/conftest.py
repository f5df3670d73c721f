"""Collects every ``*.test`` file in this folder as a pytest test (see ``sqllogictest.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqllogictest import SQLLogicTest
from testkit.kafka import TopicFactory, check_broker


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.suffix == ".test":
        return SQLLogicTestFile.from_parent(parent, path=file_path)
    return None


class SQLLogicTestFile(pytest.File):
    def collect(self):
        yield SQLLogicTestItem.from_parent(self, name=self.path.stem)


class SQLLogicTestItem(pytest.Item):
    def runtest(self) -> None:
        # Tests need the real broker: without one they fail, they never skip.
        check_broker()
        factory = TopicFactory(prefix=f"sql-{self.name}")
        try:
            records = SQLLogicTest(self.path, factory).run()
        finally:
            factory.delete_all()
        if records == 0:
            raise AssertionError(f"{self.path}: no records: the file tests nothing")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, AssertionError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, 0, f"sqllogictest: {self.name}"
