"""The served model: registry-first loading, local fallback, atomic hot reload and a background alias poll.

`ModelService.current()` returns an immutable `ServedModel` snapshot; a reload loads the new model
OUTSIDE the swap lock (the old one keeps answering) and then swaps the reference under the lock, so a
request sees either the old or the new model, never a half-loaded one.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api.redact import redact_text, redact_uri, redacting_logger
from api.settings import Settings

if TYPE_CHECKING:
    from market_master.lib.mlflow_adapter import MlflowAdapter

logger = redacting_logger(__name__)

# /health re-checks the registry when its last check is older than this (sqlite: also whenever the
# database file was replaced or deleted since, which a stat() shows for free)
REGISTRY_CHECK_MAX_AGE_S = 5.0
_MISSING = ("missing",)


def sqlite_db_path(tracking_uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI, None for any other scheme."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri.removeprefix("sqlite:///").split("?", 1)[0])


def _file_identity(path: Path) -> tuple:
    """(device, inode) of the file, `_MISSING` when absent: a replaced file (os.replace, restore from a
    copy) or a deleted one changes it."""
    try:
        st = os.stat(path)
    except OSError:
        return _MISSING
    return (st.st_dev, st.st_ino)


def dispose_sqlite_engines(db_path: Path) -> int:
    """Close MLflow's pooled SQLAlchemy connections to `db_path` (tracking and registry stores).

    MLflow caches one engine per database URI for the life of the process and its pool keeps sqlite
    connections open, so after the file is replaced those connections still read the OLD file (its inode
    stays open). Disposing the pool makes the next query open the path as it is now. Returns the number of
    engines disposed.
    """
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore

    target = os.path.abspath(db_path)
    disposed = 0
    for store_cls in (TrackingStore, RegistryStore):
        engines = getattr(store_cls, "_engine_map", None) or {}
        for uri, engine in list(engines.items()):
            path = sqlite_db_path(str(uri))
            if path is not None and os.path.abspath(path) == target:
                engine.dispose()
                disposed += 1
    return disposed


class ModelUnavailableError(RuntimeError):
    """No model could be loaded (registry and local copy both unavailable)."""


@dataclass(frozen=True)
class ServedModel:
    """One loaded model and where it came from. Immutable: swapped whole on reload."""

    model: Any
    name: str
    version: str | None
    alias: str | None
    source: str  # "registry" | "local_fallback" | "uri"
    model_uri: str
    loaded_at: dt.datetime
    warning: str | None = None
    symbols: frozenset[str] = field(default_factory=frozenset)

    @property
    def warmup(self) -> int:
        return int(self.model.feature_config.warmup)

    @property
    def min_bars(self) -> int:
        """Bars a window needs so its last bar has features: warm-up + 1."""
        return self.warmup + 1


@dataclass(frozen=True)
class ReloadOutcome:
    changed: bool
    previous: ServedModel | None
    current: ServedModel | None
    error: str | None = None


def _model_symbols(model: Any) -> frozenset[str]:
    """Symbols the model was trained on (empty if the model does not say)."""
    for attr in ("symbols", "trained_symbols"):
        value = getattr(model, attr, None)
        if value:
            return frozenset(str(s).upper() for s in value)
    return frozenset()


class ModelService:
    """Loads and serves the component model named by `settings.model_uri`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._served: ServedModel | None = None
        self._swap_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.last_error: str | None = None
        # the registry as last checked: None = readable; the error (redacted) otherwise
        self.registry_error: str | None = None
        self._registry_checked_at: float | None = None  # time.monotonic() of the last check
        self._registry_lock = threading.Lock()
        self._db_path = sqlite_db_path(settings.tracking_uri)
        self._db_identity_seen: tuple | None = None  # file identity the pooled connections were opened on
        self._db_identity_checked: tuple | None = None  # file identity at the last registry check

    # ---- reading ---------------------------------------------------------------------------------------
    def current(self) -> ServedModel:
        """The model serving right now; raises ModelUnavailableError when none is loaded."""
        served = self._served
        if served is None:
            detail = f" Last error: {self.last_error}" if self.last_error else ""
            raise ModelUnavailableError(
                redact_text(
                    f"no model is loaded: {self.settings.model_uri} could not be resolved against "
                    f"{self.settings.tracking_uri} and no local copy exists at "
                    f"{self.settings.local_model_dir}. Train and promote a model (market-master run), then "
                    f"POST /admin/reload.{detail}"
                )
            )
        return served

    def peek(self) -> ServedModel | None:
        return self._served

    # ---- loading ---------------------------------------------------------------------------------------
    def _adapter(self, model_name: str | None = None) -> MlflowAdapter:
        """The MLflow adapter on the tracking URI of the CURRENT settings (explicit, never MLflow's
        process-global URI); `model_name` from the served URI."""
        from market_master import settings as mm_settings
        from market_master.lib.mlflow_adapter import MlflowAdapter

        return MlflowAdapter(self.settings.tracking_uri, model_name=model_name or mm_settings.MODEL_NAME)

    # ---- the registry as it is NOW ---------------------------------------------------------------------
    def _current_db_path(self) -> Path | None:
        # tests (and operators, through a restart) may swap the settings: follow the current ones
        path = sqlite_db_path(self.settings.tracking_uri)
        if path != self._db_path:
            self._db_path, self._db_identity_seen, self._db_identity_checked = path, None, None
        return path

    def _sync_registry_file(self) -> None:
        """sqlite: when the database file was replaced or deleted since the pooled connections were
        opened, drop them, so the next query reads the file as it is now (not the old inode)."""
        path = self._current_db_path()
        if path is None:
            return
        identity = _file_identity(path)
        if identity != self._db_identity_seen:  # first sight too: the process may hold older connections
            n = dispose_sqlite_engines(path)
            if self._db_identity_seen is not None:
                logger.info("registry database %s changed on disk: %d pooled engine(s) reopened", path, n)
            self._db_identity_seen = identity

    def _checked_adapter(self, model_name: str | None = None) -> MlflowAdapter:
        """An adapter on the registry as it is now, after a reachability check (recorded for /health)."""
        with self._registry_lock:
            self._sync_registry_file()
            adapter = self._adapter(model_name)
            path = self._db_path
            try:
                adapter.check_reachable()
            except Exception as exc:
                self._note_registry(f"cannot read the MLflow registry: {exc}", path)
                raise
            self._note_registry(None, path)
            return adapter

    def registry_adapter(self, model_name: str | None = None) -> MlflowAdapter:
        """An adapter on the registry as it is now (reachability checked, recorded for /health)."""
        return self._checked_adapter(model_name)

    def _note_registry(self, error: str | None, path: Path | None) -> None:
        if error is not None and self.registry_error is None:
            logger.warning("%s", redact_text(error))
        elif error is None and self.registry_error is not None:
            logger.info("the MLflow registry at %s is readable again", redact_uri(self.settings.tracking_uri))
        self.registry_error = redact_text(error)
        self._registry_checked_at = time.monotonic()
        self._db_identity_checked = _file_identity(path) if path is not None else None

    def registry_status(self, max_age_s: float = REGISTRY_CHECK_MAX_AGE_S) -> str | None:
        """The registry error now (None = readable), re-checked when the last check is older than
        `max_age_s` or the sqlite file was replaced / deleted since. Never blocks behind a running check
        (the poll's, a reload's): then the last result is returned."""
        path = self._current_db_path()
        fresh = (
            self._registry_checked_at is not None
            and time.monotonic() - self._registry_checked_at <= max_age_s
            and (path is None or _file_identity(path) == self._db_identity_checked)
        )
        if fresh:
            return self.registry_error
        if not self._reload_lock.acquire(blocking=False):
            return self.registry_error
        try:
            self._checked_adapter()
        except Exception:  # recorded in registry_error by _checked_adapter
            pass
        finally:
            self._reload_lock.release()
        return self.registry_error

    def _load_from_uri(self) -> ServedModel:
        """Resolve `settings.model_uri` (alias -> version) and load that exact version from the registry."""
        from market_master.lib.mlflow_adapter import parse_model_uri

        uri = self.settings.model_uri
        if not uri.startswith("models:/"):
            model = self._checked_adapter().load_model_uri(uri)
            return self._served_model(model, str(getattr(model, "name", None) or uri), None, None, "uri", uri)
        name, version, alias = parse_model_uri(uri)
        adapter = self._checked_adapter(name)
        if alias is not None:
            version = adapter.require_alias_version(alias)
        model = adapter.load_model(version)
        return self._served_model(model, name, str(version), alias, "registry", adapter.model_uri(version))

    def _load_local_copy(self, reason: str) -> ServedModel:
        from market_master.lib.mlflow_adapter import load_model_dir, read_local_copy_info

        info = read_local_copy_info(self.settings.local_model_dir)
        model = load_model_dir(info.model_dir)
        warning = (
            f"SERVING THE LOCAL FALLBACK COPY {info.model_dir} ({info.name} version {info.version}, exported "
            f"{info.exported_at.isoformat()}), NOT THE REGISTRY: {reason}"
        )
        return self._served_model(
            model, info.name, info.version, info.alias, "local_fallback", str(info.model_dir), warning=warning
        )

    @staticmethod
    def _served_model(model, name, version, alias, source, uri, warning=None) -> ServedModel:
        return ServedModel(
            model=model,
            name=name,
            version=version,
            alias=alias,
            source=source,
            model_uri=uri,
            loaded_at=dt.datetime.now(dt.UTC),
            warning=warning,
            symbols=_model_symbols(model),
        )

    def _resolve_and_load(self) -> ServedModel:
        """Registry first; on a registry/alias failure the local copy, loudly; raise if neither works."""
        try:
            return self._load_from_uri()
        except Exception as exc:  # registry unreachable, alias missing, broken artifact ...
            reason = redact_text(
                f"{self.settings.model_uri} failed against {self.settings.tracking_uri}: {exc}"
            )
            if not (self.settings.local_model_dir.exists()):
                raise ModelUnavailableError(
                    f"{reason}; no local copy at {self.settings.local_model_dir}"
                ) from exc
            logger.warning("registry load failed, trying the local copy: %s", reason)
            try:
                served = self._load_local_copy(reason)
            except Exception as local_exc:
                raise ModelUnavailableError(
                    redact_text(
                        f"{reason}; the local copy at {self.settings.local_model_dir} failed too: {local_exc}"
                    )
                ) from local_exc
            logger.warning("%s", served.warning)
            return served

    def load_initial(self) -> None:
        """Load at start-up; never raises (model endpoints answer 503 while nothing is loaded)."""
        try:
            self._swap(self._resolve_and_load())
            self.last_error = None
        except Exception as exc:
            self.last_error = redact_text(str(exc))
            logger.error("no model loaded at start-up: %s", exc)

    def _swap(self, served: ServedModel) -> ServedModel | None:
        with self._swap_lock:
            previous, self._served = self._served, served
        logger.info(
            "serving %s version %s (alias %s, source %s) from %s",
            served.name,
            served.version,
            served.alias,
            served.source,
            served.model_uri,
        )
        return previous

    def _needs_load(self) -> bool:
        """True when the alias points elsewhere than what is served (or we serve a fallback / nothing)."""
        from market_master.lib.mlflow_adapter import parse_model_uri

        served = self._served
        if served is None or served.source != "registry":
            return True
        if not self.settings.model_uri.startswith("models:/"):
            self._checked_adapter()  # nothing to re-resolve, but /health learns if the registry is readable
            return False
        name, _, alias = parse_model_uri(self.settings.model_uri)
        adapter = self._checked_adapter(name)
        if alias is None:
            return False
        return adapter.require_alias_version(alias) != served.version

    def reload(self, force: bool = False) -> ReloadOutcome:
        """Re-resolve the alias and swap in the new version if it moved. The old model serves meanwhile.

        A failed reload keeps the current model and reports the error (`ReloadOutcome.error`).
        """
        with self._reload_lock:
            previous = self._served
            try:
                if not force and not self._needs_load():
                    self.last_error = None
                    return ReloadOutcome(False, previous, previous)
                fresh = self._load_from_uri() if previous is not None else self._resolve_and_load()
            except Exception as exc:
                error = redact_text(str(exc))
                self.last_error = f"reload failed, still serving the previous model: {error}"
                logger.warning("%s", self.last_error)
                return ReloadOutcome(False, previous, previous, error=error)
            self._swap(fresh)
            self.last_error = None
            changed = previous is None or (fresh.version, fresh.source) != (previous.version, previous.source)
            return ReloadOutcome(changed, previous, fresh)

    # ---- background poll -------------------------------------------------------------------------------
    def start_polling(self) -> None:
        """Poll the alias every `reload_poll_seconds` (0 = off) in a daemon thread."""
        interval = self.settings.reload_poll_seconds
        if interval <= 0 or self._poller is not None:
            return
        self._stop.clear()
        self._poller = threading.Thread(
            target=self._poll_loop, args=(interval,), name="model-poll", daemon=True
        )
        self._poller.start()

    def _poll_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            outcome = self.reload()
            if outcome.changed and outcome.current is not None:
                logger.info("alias poll: now serving version %s", outcome.current.version)

    def stop_polling(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=10)
            self._poller = None
