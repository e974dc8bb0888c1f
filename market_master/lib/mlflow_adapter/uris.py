"""The one parser of `models:/` URIs."""

from __future__ import annotations

from typing import NamedTuple

from market_master.lib.mlflow_adapter.errors import RegistryError

_EXPECTED = "expected a models:/<name>@<alias> or models:/<name>/<version> URI"


class ModelRef(NamedTuple):
    """A registered model by version (`models:/name/3`) or alias (`models:/name@Production`)."""

    name: str
    version: str | None
    alias: str | None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{self.alias}" if self.alias else f"models:/{self.name}/{self.version}"


def is_model_uri(uri: str) -> bool:
    return uri.startswith("models:/")


def parse_model_uri(model_uri: str) -> ModelRef:
    """`models:/name@alias` -> (name, None, alias); `models:/name/3` -> (name, "3", None); RegistryError
    for anything else."""
    if not is_model_uri(model_uri):
        raise RegistryError(f"{_EXPECTED}, got {model_uri!r}")
    rest = model_uri.removeprefix("models:/").strip("/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        if name and alias:
            return ModelRef(name, None, alias)
        raise RegistryError(f"{_EXPECTED}, got {model_uri!r}")
    name, sep, version = rest.rpartition("/")
    if not sep or not name or not version.isdigit():
        raise RegistryError(f"{_EXPECTED}, got {model_uri!r}")
    return ModelRef(name, version, None)
