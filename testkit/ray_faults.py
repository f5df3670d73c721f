"""Fault injection for kafkars' Ray read tasks, from outside the package.

:func:`install` is the Ray cluster's ``worker_process_setup_hook``: Ray runs it in every worker
process before any task. It wraps ``kafkars.ray.read_range``, the call each read task makes
for its range, so that a task whose runtime environment sets :data:`FAIL_ONCE_ENV` to a
directory fails its range's first attempt, leaving a marker file there, and reads it on the
next attempt. Tasks without the variable are untouched.
"""

from __future__ import annotations

import functools
import os
from typing import Any

#: A directory for the markers: set per dataset through ``ray_remote_args``'s
#: ``runtime_env["env_vars"]``.
FAIL_ONCE_ENV = "KAFKARS_TEST_RAY_FAIL_ONCE_DIR"


def install() -> None:
    """Wrap ``kafkars.ray.read_range`` in this worker process (idempotent)."""
    import kafkars.ray

    read_range = kafkars.ray.read_range
    if getattr(read_range, "fails_once", False):
        return

    @functools.wraps(read_range)
    def failing_once(config: Any, offset_range: Any, *args: Any, **kwargs: Any) -> Any:
        directory = os.environ.get(FAIL_ONCE_ENV)
        if directory:
            r = offset_range
            marker = os.path.join(directory, f"{r.topic}-{r.partition}-{r.start}")
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                raise kafkars.ray.RetriableReadError(
                    f"injected failure of the first attempt at {offset_range}"
                )
        return read_range(config, offset_range, *args, **kwargs)

    failing_once.fails_once = True  # type: ignore[attr-defined]
    kafkars.ray.read_range = failing_once  # type: ignore[assignment]
