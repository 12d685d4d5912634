"""Reading a Fisher table and a plan from disk: each bad file is one message that says where."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fisher_mi.errors import ConfigError, DataError
from fisher_mi.plan import FreezePlan, plan_freeze, read_fisher_table


def _table(rows: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "layer": [f"l{i}" for i in range(rows)],
            "depth": list(range(rows)),
            "kind": ["Linear"] * rows,
            "n_params": [10] * rows,
            "split": ["private"] * rows,
            "n_samples": [4] * rows,
            "fisher_trace": [1.0, 2.0, 3.0][:rows],
            "fisher_per_param": [0.1, 0.2, 0.3][:rows],
            "fisher": ["empirical"] * rows,
            "backend": ["hooks"] * rows,
        }
    )


def test_text_in_a_numeric_cell_names_its_row(tmp_path: Path) -> None:
    path = tmp_path / "fisher.csv"
    _table().to_csv(path, index=False)
    path.write_text(path.read_text().replace("3.0", "NaN"))
    with pytest.raises(ConfigError) as caught:
        plan_freeze(read_fisher_table(path))
    message = str(caught.value)
    assert "'NaN'" in message and "row 3" in message and "'l2'" in message
    assert "'private'" in message and "fisher_trace" in message


@pytest.mark.parametrize(
    ("make", "says"),
    [
        pytest.param(lambda t: t, "is a folder", id="folder"),
        pytest.param(lambda t: t / "none.csv", "does not exist", id="missing"),
    ],
)
def test_table_path_errors(tmp_path: Path, make, says: str) -> None:
    with pytest.raises(DataError, match=says):
        read_fisher_table(make(tmp_path))


def test_plan_path_that_is_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder"):
        FreezePlan.load(tmp_path)
