"""The registry behind every pluggable part: names, aliases, duplicates, messages."""

from __future__ import annotations

import pytest

from fisher_mi.errors import RegistryError
from fisher_mi.registry import Registry


@pytest.fixture
def colours() -> Registry[int]:
    registry: Registry[int] = Registry("colour")
    registry.add("red", 1)
    registry.register("green")(2)
    registry.alias("default", "green")
    return registry


def test_get_resolves_names_and_aliases(colours: Registry[int]) -> None:
    assert colours.get("red") == 1
    assert colours.get("default") == 2
    assert colours.resolve("default") == "green"
    assert "default" in colours and "blue" not in colours


def test_names_list_aliases_first(colours: Registry[int]) -> None:
    assert colours.names() == ["default", "red", "green"]
    assert dict(colours.items()) == {"red": 1, "green": 2}


def test_unknown_name_lists_the_known_ones(colours: Registry[int]) -> None:
    with pytest.raises(RegistryError) as caught:
        colours.get("blue")
    assert str(caught.value) == "unknown colour 'blue'; known: default, red, green"


@pytest.mark.parametrize("name", ["red", "default"])
def test_a_name_is_registered_once(colours: Registry[int], name: str) -> None:
    with pytest.raises(RegistryError, match="registered twice"):
        colours.add(name, 3)
    with pytest.raises(RegistryError, match="registered twice"):
        colours.alias(name, "red")
