"""Which epoch a run keeps, and why: the rule behind ``model.pt`` and ``history.csv``'s
``kept`` and ``kept_because`` columns.

The kept epoch has the highest validation accuracy. On small data the validation part is tiny
(20 images on AT&T) and the accuracy ties at 100% after an epoch or two, so the first of the
tied epochs would be an early, barely trained model. Ties therefore go to the lower
validation loss (mean cross-entropy: still falling while the accuracy is flat), and a tie in
both to the later epoch. That is the order of ``selection_key``. Without a validation part
the last epoch is kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

Row = Mapping[str, float]


def has_validation(row: Row) -> bool:
    """Whether the epoch was measured on a validation part (its accuracy is not NaN)."""
    return not math.isnan(row["validation_accuracy"])


def selection_key(row: Row) -> tuple[float, float, int]:
    """``(validation accuracy, -validation loss, epoch)``: the epoch with the largest key is
    kept. A NaN loss (a diverged model) counts as an infinite one."""
    loss = row["validation_loss"]
    return row["validation_accuracy"], -(math.inf if math.isnan(loss) else loss), row["epoch"]


def kept_because(history: Sequence[Row], kept: int) -> list[str]:
    """One line per epoch of ``history`` saying why it is (or is not) the ``kept`` epoch."""
    best = next(row for row in history if row["epoch"] == kept)
    if not has_validation(best):
        return [
            "the last epoch; no validation part"
            if row is best
            else "not the last epoch; no validation part"
            for row in history
        ]
    return [_why_kept(best, history) if row is best else _why_not(row, best) for row in history]


def _why_kept(best: Row, history: Sequence[Row]) -> str:
    """``highest validation accuracy``, and what broke a tie."""
    tied = [row for row in history if row is not best and _same(row, best, "accuracy")]
    if not tied:
        return "highest validation accuracy"
    equal = [row for row in tied if _same(row, best, "loss")]
    if not equal:
        return (
            f"highest validation accuracy, tied with {_epochs(tied)}; "
            "lowest validation loss of them"
        )
    return (
        f"highest validation accuracy and lowest loss, tied with {_epochs(equal)}; "
        "the latest of them"
    )


def _why_not(row: Row, best: Row) -> str:
    """What the epoch ``best`` beats ``row`` by."""
    epoch = int(best["epoch"])
    if not _same(row, best, "accuracy"):
        return f"lower validation accuracy than epoch {epoch}"
    if not _same(row, best, "loss"):
        return f"validation accuracy tied with epoch {epoch}; higher validation loss"
    return f"validation accuracy and loss tied with epoch {epoch}, which is later"


def _same(row: Row, other: Row, measure: str) -> bool:
    """Whether the two epochs tie on ``accuracy`` or ``loss`` (as ``selection_key`` sees it)."""
    index = 0 if measure == "accuracy" else 1
    return selection_key(row)[index] == selection_key(other)[index]


def _epochs(rows: Sequence[Row]) -> str:
    """``epoch 3`` or ``epochs 1, 3``."""
    numbers = ", ".join(str(int(row["epoch"])) for row in rows)
    return f"epoch{'s' if len(rows) > 1 else ''} {numbers}"
