"""Process memory as Linux reports it, for tests that bound a reader's memory."""

from __future__ import annotations


def status_kib(field: str, pid: int | str = "self") -> int:
    """A ``/proc/<pid>/status`` figure in KiB: ``VmRSS`` (resident now) or ``VmHWM`` (the
    peak, which writing ``5`` to ``/proc/<pid>/clear_refs`` resets to the current RSS).

    Raises ``RuntimeError`` when the process has no such field.
    """
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")
