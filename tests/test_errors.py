"""One-line messages of fisher_mi's errors (``fisher_mi.errors.one_line``, ``os_error_line``)."""

from __future__ import annotations

import errno

import pytest

from fisher_mi.errors import DataError, one_line, os_error_line

WORKER_MESSAGE = """Caught DataError in DataLoader worker process 0.
Original Traceback (most recent call last):
  File "/x/torch/utils/data/_utils/worker.py", line 349, in _worker_loop
    data = fetcher.fetch(index)
fisher_mi.errors.DataError: cannot read image /d/1/2.png (truncated); replace or remove it
"""

CASES = [
    pytest.param(DataError("plain message"), "plain message", id="plain"),
    pytest.param(
        DataError(WORKER_MESSAGE),
        "cannot read image /d/1/2.png (truncated); replace or remove it",
        id="dataloader-worker",
    ),
    pytest.param(DataError("first line\nsecond line"), "first line", id="two-lines"),
    pytest.param(DataError(""), "DataError", id="empty"),
]


@pytest.mark.parametrize(("error", "expected"), CASES)
def test_one_line(error: Exception, expected: str) -> None:
    assert one_line(error) == expected


def test_os_error_line_names_the_file_and_reason() -> None:
    line = os_error_line(OSError(errno.EACCES, "Permission denied", "/r/fisher.csv"))
    assert "/r/fisher.csv" in line and "Permission denied" in line and "\n" not in line
