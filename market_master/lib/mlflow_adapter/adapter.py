"""MlflowAdapter: the one door to MLflow (tracking, registry, model loading, local copy).

One adapter = one explicit tracking URI (+ registry URI, default the same), one experiment, one
registered model name. It holds its own `MlflowClient`; it never reads or sets MLflow's process-global
tracking URI and never uses the fluent API, so adapters on different stores coexist in one process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from mlflow.tracking import MlflowClient

from market_master import settings
from market_master.lib.aliases import PRODUCTION_ALIAS
from market_master.lib.mlflow_adapter import client as _client
from market_master.lib.mlflow_adapter import local_copy as _local_copy
from market_master.lib.mlflow_adapter import models as _models
from market_master.lib.mlflow_adapter import registry as _registry
from market_master.lib.mlflow_adapter import runs as _runs
from market_master.lib.mlflow_adapter.uris import ModelRef, is_model_uri, parse_model_uri

if TYPE_CHECKING:
    import mlflow.pyfunc

    from market_master.lib.model import ComponentModel
    from market_master.lib.training import TrainingResult

log = logging.getLogger(__name__)


class MlflowAdapter:
    """MLflow for one tracking URI, experiment and registered model (see module docstring)."""

    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str = settings.EXPERIMENT_NAME,
        model_name: str = settings.MODEL_NAME,
        artifact_location: str | None = None,
        *,
        registry_uri: str | None = None,
        timeout_s: float = _client.DEFAULT_TIMEOUT_S,
    ) -> None:
        if not tracking_uri:
            raise ValueError("MlflowAdapter needs an explicit tracking URI")
        self.tracking_uri = str(tracking_uri)
        self.registry_uri = str(registry_uri or tracking_uri)
        self.experiment_name = experiment_name
        self.model_name = model_name
        self.artifact_location = artifact_location or _client.default_artifact_location(self.tracking_uri)
        self.timeout_s = timeout_s
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None

    def __repr__(self) -> str:
        return (
            f"MlflowAdapter({self.tracking_uri!r}, experiment={self.experiment_name!r}, "
            f"model={self.model_name!r})"
        )

    @property
    def client(self) -> MlflowClient:
        """The adapter's client, built on first use (building one creates a missing sqlite store)."""
        if self._client is None:
            self._client = _client.make_client(self.tracking_uri, self.registry_uri)
        return self._client

    def _call(self, what: str):
        return _client.registry_call(self.tracking_uri, what, self.timeout_s)

    # ------------------------------------------------------------------------------------------ tracking

    def check_reachable(self) -> None:
        """RegistryError naming the URI unless the registry answers (bounded wait; see client.py)."""
        _client.check_reachable(self.tracking_uri, None, self.timeout_s)

    def ensure_experiment(self) -> str:
        """The experiment's id, created (artifact location, experiment-kind tag) when missing."""
        if self._experiment_id is None:
            with self._call(f"getting experiment {self.experiment_name!r}"):
                self._experiment_id = _client.ensure_experiment(
                    self.client, self.experiment_name, self.artifact_location
                )
        return self._experiment_id

    def log_training(self, result: TrainingResult) -> _runs.RegisteredChampion:
        """Parent run + nested candidate/baseline runs; the champion registered with alias Staging."""
        return _runs.log_training(self.client, self.ensure_experiment(), result, self.model_name)

    def log_index_signal(self, signal: pd.DataFrame, run_name: str) -> str:
        """One run with the hourly WSS / covered weight / decision series and the CSV; returns its id."""
        return _runs.log_index_signal(self.client, self.ensure_experiment(), signal, run_name)

    def log_report(self, html_path: str | Path, summary: dict, run_name: str) -> str:
        """One run with the report HTML + summary JSON and the numeric summary as metrics; returns its id."""
        return _runs.log_report(self.client, self.ensure_experiment(), html_path, summary, run_name)

    # ------------------------------------------------------------------------------------------ registry

    def model_uri(self, version: str | int | None = None, alias: str | None = None) -> str:
        """`models:/<model_name>/<version>` or `models:/<model_name>@<alias>`."""
        return self._ref(version, alias).uri

    def _ref(self, version: str | int | None, alias: str | None) -> ModelRef:
        if (version is None) == (alias is None):
            raise ValueError("give exactly one of version and alias")
        return ModelRef(self.model_name, None if version is None else str(version), alias)

    def alias_version(self, alias: str) -> str | None:
        """The version `alias` points to, None when unset; RegistryError for an unknown model."""
        with self._call(f"reading alias {alias!r} of {self.model_name!r}"):
            return _registry.alias_version(self.client, self.tracking_uri, self.model_name, alias)

    def version_tags(self, version: str | int) -> dict[str, str]:
        """The tags of one model version (training / validation / test windows, champion, promotions)."""
        with self._call(f"reading tags of {self.model_name} v{version}"):
            return dict(self.client.get_model_version(self.model_name, str(version)).tags)

    def latest_version(self):
        """The newest registered version (an MLflow `ModelVersion`: `.version`, `.tags`,
        `.creation_timestamp` in ms), None when the model has no version; RegistryError for an unknown
        model."""
        with self._call(f"reading the latest version of {self.model_name!r}"):
            return _registry.latest_version(self.client, self.tracking_uri, self.model_name)

    def set_version_tags(self, version: str | int, tags: dict[str, str]) -> None:
        """Set (overwrite) tags on one model version."""
        with self._call(f"tagging {self.model_name} v{version}"):
            _registry.get_version(self.client, self.tracking_uri, self.model_name, str(version))
            for key, value in tags.items():
                self.client.set_model_version_tag(self.model_name, str(version), key, value)

    def require_alias_version(self, alias: str) -> str:
        """Like alias_version, but RegistryError when the alias is not set."""
        with self._call(f"reading alias {alias!r} of {self.model_name!r}"):
            return _registry.require_alias_version(self.client, self.tracking_uri, self.model_name, alias)

    def move_alias(self, alias: str, version: str | int, actor: str, reason: str, kind: str = "move"):
        """Point `alias` at `version`, recorded (version tags + history tag); returns the AliasMove."""
        with self._call(f"moving {self.model_name}@{alias} to version {version}"):
            return _registry.move_alias(
                self.client, self.tracking_uri, self.model_name, alias, str(version), actor, reason, kind
            )

    def promote(self, version: str | int, actor: str, reason: str, alias: str = PRODUCTION_ALIAS):
        """Move `alias` (default Production) to `version`, recorded as a promotion."""
        return self.move_alias(alias, version, actor, reason, kind="promote")

    def rollback(self, actor: str, reason: str, alias: str = PRODUCTION_ALIAS):
        """Point `alias` back at the version live before the current one (the history is a stack)."""
        with self._call(f"rolling back {self.model_name}@{alias}"):
            return _registry.rollback(self.client, self.tracking_uri, self.model_name, alias, actor, reason)

    def rollback_target(self, alias: str = PRODUCTION_ALIAS) -> str:
        """The version `rollback` would move `alias` to (RegistryError when there is none)."""
        with self._call(f"reading the rollback target of {self.model_name}@{alias}"):
            return _registry.rollback_target(self.client, self.tracking_uri, self.model_name, alias)

    def alias_history(self, alias: str = PRODUCTION_ALIAS) -> list[_registry.AliasMove]:
        """Recorded moves of `alias`, oldest first."""
        with self._call(f"reading alias history of {self.model_name!r}"):
            return _registry.alias_history(self.client, self.tracking_uri, self.model_name, alias)

    # ------------------------------------------------------------------------------------------ models

    def _version_artifacts(self, name: str, version: str) -> str:
        _registry.get_version(self.client, self.tracking_uri, name, version)
        return self.client.get_model_version_download_uri(name, version)

    def _pin(self, ref: ModelRef) -> ModelRef:
        if ref.version is not None:
            return ref
        version = _registry.require_alias_version(self.client, self.tracking_uri, ref.name, ref.alias)
        return ModelRef(ref.name, version, None)

    def load_pyfunc(self, version: str | int | None = None, *, alias: str | None = None):
        """The registered pyfunc by version or alias (alias resolved once, that version downloaded)."""
        return self.load_pyfunc_uri(self.model_uri(version, alias))

    def load_model(self, version: str | int | None = None, *, alias: str | None = None) -> ComponentModel:
        """The ComponentModel of a registered version, by version or alias."""
        return self.load_model_uri(self.model_uri(version, alias))

    def load_pyfunc_uri(self, model_uri: str) -> mlflow.pyfunc.PyFuncModel:
        """A pyfunc by URI: `models:/name/3` / `models:/name@alias` (this registry), `runs:/...` or another
        artifact URI (this tracking server), or a local model directory."""
        with self._call(f"loading {model_uri}"):
            if is_model_uri(model_uri):
                ref = self._pin(parse_model_uri(model_uri))
                artifact_uri = self._version_artifacts(ref.name, ref.version)
                return _models.load_pyfunc_artifacts(artifact_uri, self.tracking_uri)
            if Path(model_uri).is_dir():
                return _models.load_pyfunc_dir(model_uri)
            return _models.load_pyfunc_artifacts(model_uri, self.tracking_uri)

    def load_model_uri(self, model_uri: str) -> ComponentModel:
        """The ComponentModel behind `model_uri` (any URI `load_pyfunc_uri` takes)."""
        return _models.component_model_of(self.load_pyfunc_uri(model_uri), model_uri)

    # ------------------------------------------------------------------------------------------ local copy

    def export_local_copy(
        self, dest_dir: str | Path, alias: str | None = PRODUCTION_ALIAS, version: str | int | None = None
    ) -> Path:
        """Download a registered version (by alias, default Production, or `version`) to `dest_dir/model`,
        replacing any previous copy, with `dest_dir/local_copy.json` (name, version, alias, exported_at,
        run_id). The alias is resolved once, so a concurrent alias move cannot mix versions. Returns the
        model directory (loadable with `load_model_dir`)."""
        ref = self._ref(version, None if version is not None else alias)
        with self._call(f"exporting {ref.uri}"):
            pinned = self._pin(ref)
            mv = _registry.get_version(self.client, self.tracking_uri, pinned.name, pinned.version)
            info = {
                "name": pinned.name,
                "version": pinned.version,
                "alias": ref.alias,
                "run_id": mv.run_id,
                "source_uri": ref.uri,
            }
            artifact_uri = self.client.get_model_version_download_uri(pinned.name, pinned.version)
            model_dir = _local_copy.export_local_copy(artifact_uri, self.tracking_uri, dest_dir, info)
        log.info("exported %s (version %s) to %s", ref.uri, pinned.version, dest_dir)
        return model_dir
