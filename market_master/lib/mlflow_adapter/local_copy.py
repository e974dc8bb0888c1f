"""The local fallback copy of a registered model version (what the API serves when the registry is down)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import mlflow.artifacts

from market_master.lib.mlflow_adapter.errors import RegistryError

LOCAL_COPY_INFO = "local_copy.json"
LOCAL_COPY_MODEL_DIR = "model"


@dataclass(frozen=True)
class LocalCopyInfo:
    """What `export_local_copy` wrote: `model_dir` is loadable with `mlflow.pyfunc.load_model`."""

    name: str
    version: str
    alias: str | None
    exported_at: datetime
    run_id: str | None
    model_dir: Path


def export_local_copy(
    artifact_uri: str,
    tracking_uri: str,
    dest_dir: str | Path,
    info: dict,
) -> Path:
    """Download the model directory at `artifact_uri` to `dest_dir/model` (replacing any previous copy
    atomically) and write `info` (+ `exported_at`) as `dest_dir/local_copy.json`. Returns the model dir."""
    dest = Path(dest_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        downloaded = mlflow.artifacts.download_artifacts(
            artifact_uri=artifact_uri, dst_path=str(staging / ".download"), tracking_uri=tracking_uri
        )
        os.replace(downloaded, staging / LOCAL_COPY_MODEL_DIR)  # the model directory itself (MLmodel inside)
        shutil.rmtree(staging / ".download", ignore_errors=True)
        record = {**info, "exported_at": datetime.now(UTC).isoformat()}
        (staging / LOCAL_COPY_INFO).write_text(json.dumps(record, indent=2))
        swap_dirs(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest / LOCAL_COPY_MODEL_DIR


def swap_dirs(new: Path, dest: Path) -> None:
    """Replace `dest` by `new`: two renames on the same filesystem; the old copy is restored on failure."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}-{datetime.now(UTC).strftime('%H%M%S%f')}")
        os.replace(dest, old)
    try:
        os.replace(new, dest)
    except OSError:
        if old is not None:
            os.replace(old, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_local_copy_info(dest_dir: str | Path) -> LocalCopyInfo:
    """Read what export_local_copy wrote; RegistryError when there is no (complete) copy."""
    dest = Path(dest_dir)
    info_path = dest / LOCAL_COPY_INFO
    if not info_path.exists() or not (dest / LOCAL_COPY_MODEL_DIR / "MLmodel").exists():
        raise RegistryError(f"no local model copy at {dest} (expected {LOCAL_COPY_INFO} and model/MLmodel)")
    raw = json.loads(info_path.read_text())
    return LocalCopyInfo(
        name=raw["name"],
        version=str(raw["version"]),
        alias=raw.get("alias"),
        exported_at=datetime.fromisoformat(raw["exported_at"]),
        run_id=raw.get("run_id"),
        model_dir=dest / LOCAL_COPY_MODEL_DIR,
    )
