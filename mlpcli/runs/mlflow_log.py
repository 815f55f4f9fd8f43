"""MLflow logging of a run or a sweep (train.mlflow): one MLflow run per run folder, recorded in
its mlflow.json, so that a resume continues it and a sweep's trials nest under the sweep's run.

MLflow is imported here only, once a run asks. The run folder stays the record: a tracking
server that is down or refuses is one warning line, and nothing more is sent to it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..callbacks import Callback
from ..console import err
from ..errors import ConfigError, MlpError, first_line
from ..version import __version__
from .folder import (
    CONFIG_FILE,
    MLFLOW_FILE,
    MODEL_FILE,
    SUMMARY_FILE,
    read_json,
    write_json,
)
from .tracking import flat_hparams

if TYPE_CHECKING:
    from ..config.schema import Config
    from ..training.trainer import Trainer
    from .checkpoint import CheckpointSaver

EXTRA = 'pip install "mlpcli[mlflow]"'
DEFAULT_EXPERIMENT = "mlpcli"
# MLflow's own defaults (7 retries with a backoff factor of 2, 120 s a request) would stall
# training for minutes on a server that is down; a user's own values win.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
# The files of a run folder logged as artifacts (checkpoints/ is not: pickled and large).
RUN_ARTIFACTS = (CONFIG_FILE, SUMMARY_FILE, "metrics.csv", "diagnostics.csv", MODEL_FILE)
SWEEP_ARTIFACTS = ("sweep.yaml", "results.csv", SUMMARY_FILE)
PLOTS = "plots"
LOCKED_RETRIES = 5  # SQLite's "database is locked" under several writers, 0.1 s doubling
# MLflow's limits (mlflow.utils.validation): a param's value, params and metrics per call.
MAX_PARAM_CHARS = 6000
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000
# A status of summary.json or of a sweep's trial, as MLflow names it.
STATUS = {"completed": "FINISHED", "pruned": "FINISHED", "failed": "FAILED", "stopped": "KILLED"}
# MLflow's loggers that tell, at INFO, of a new SQLite store's tables being made.
STORE_LOGGERS = ("mlflow.store.db.utils", "alembic")

T = TypeVar("T")


def require_mlflow() -> None:
    """One line naming the extra when the package is missing (found without importing it)."""
    if importlib.util.find_spec("mlflow") is None:
        raise ConfigError(f"train.mlflow: needs the mlflow package; install it: {EXTRA}")


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, else MLflow's default (sqlite:///mlflow.db from 3.7), with a relative
    local path made absolute: a worker, a resume from another folder and a Ray task on this host
    then reach the same store."""
    import mlflow

    uri = mlflow.get_tracking_uri()
    for scheme in ("sqlite:///", "file://"):
        if uri.startswith(scheme) and not uri[len(scheme) :].startswith("/"):
            return scheme + str(Path(uri[len(scheme) :]).resolve())
    if "://" not in uri and not uri.startswith(("sqlite:", "file:", "databricks")):
        return Path(uri).resolve().as_uri()  # a bare folder: the deprecated file store
    return uri


def status_of(status: Any) -> str:
    """MLflow's status for a summary's or a trial's status (FAILED for one it does not know)."""
    return STATUS.get(str(status or ""), "FAILED")


def _tags(folder_key: str, folder: Path, parent: str | None = None) -> dict[str, str]:
    """The tags of the MLflow run of a run folder (folder_key mlpcli.run_dir) or a sweep
    folder (mlpcli.sweep_dir), and its parent run, when nested."""
    tags = {folder_key: str(Path(folder).resolve()), "mlpcli.version": __version__}
    return {**tags, **({"mlflow.parentRunId": parent} if parent else {})}


@contextlib.contextmanager
def _quiet_store() -> Iterator[None]:
    """MLflow's INFO lines about making a new store's tables held back (its warnings not),
    as -q asks; the loggers' levels restored after."""
    loggers = [logging.getLogger(name) for name in STORE_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logging.WARNING, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def local_store(uri: str) -> bool:
    """True for a store on this host's disk, which other hosts (a Ray cluster's) cannot reach."""
    return uri.startswith(("sqlite:", "file:"))


class Link:
    """A client of one tracking URI; after the first error that is not a busy SQLite file it
    warns once and does nothing more: training never fails for MLflow. A file that cannot be
    logged (an artifact store it cannot reach) turns off files only: the run still ends."""

    def __init__(self, uri: str | None = None) -> None:
        for key, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        self.uri = uri or tracking_uri()
        self.client: Any = None  # made by the first call: opening a store can fail too
        self.off = False
        self.files_off = False  # a file failed to log: no more files, the rest goes on

    def store(self) -> Any:
        """The MlflowClient (the store's tables are created when it first opens a new one)."""
        if self.client is None:
            from mlflow.tracking import MlflowClient

            with _quiet_store():
                self.client = MlflowClient(self.uri)
        return self.client

    def call(self, fn: str | Callable[..., T], *args: Any, **kwargs: Any) -> Any:
        """fn(*args, **kwargs), fn a client method's name or a function; None once MLflow has
        failed (warned on the first failure)."""
        return self._call(False, fn, *args, **kwargs)

    def call_files(self, fn: str, *args: Any, **kwargs: Any) -> Any:
        """A call that logs files: its failure stops files only (warned once)."""
        return self._call(True, fn, *args, **kwargs)

    def _call(self, files: bool, fn: str | Callable[..., T], *args: Any, **kwargs: Any) -> Any:
        delay = 0.1
        for attempt in range(LOCKED_RETRIES + 1):
            if self.off or (files and self.files_off):
                return None
            try:
                return (getattr(self.store(), fn) if isinstance(fn, str) else fn)(*args, **kwargs)
            except Exception as exc:  # MLflow, SQLAlchemy, requests: any error stops logging
                if "database is locked" in str(exc) and attempt < LOCKED_RETRIES:
                    time.sleep(delay)
                    delay *= 2
                    continue
                if files:
                    self.fail_files(exc)
                else:
                    self.fail(exc)
        return None

    def fail(self, exc: BaseException) -> None:
        self.off = True
        err.print(
            f"warning: MLflow ({self.uri}): {_reason(exc)}; no more logging to it, the run "
            f"folder is the record",
            markup=False,
            soft_wrap=True,
        )

    def fail_files(self, exc: BaseException) -> None:
        self.files_off = True
        err.print(
            f"warning: MLflow ({self.uri}): a file could not be logged ({_reason(exc)}); no "
            f"more files logged to it, the run folder has them",
            markup=False,
            soft_wrap=True,
        )

    def experiment(self) -> str | None:
        """The experiment's id (MLFLOW_EXPERIMENT_NAME, else mlpcli), created when missing; a
        concurrent creator's "already exists" is met by reading it again."""
        from mlflow.exceptions import MlflowException

        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT

        def get_or_create() -> str:
            found = self.store().get_experiment_by_name(name)
            if found is not None:
                return str(found.experiment_id)
            try:
                return str(self.store().create_experiment(name))
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            again = self.store().get_experiment_by_name(name)
            if again is None:
                raise MlpError(f"experiment {name!r} could not be created or read")
            return str(again.experiment_id)

        return self.call(get_or_create)

    def open_run(
        self, folder: Path, tags: dict[str, str], parent: str | None = None
    ) -> dict[str, str] | None:
        """The MLflow run of a folder: the one its mlflow.json names, RUNNING again, when this
        store has it; else a new one named after the folder. Its record, not yet written."""
        saved = _read_record(folder)
        if saved is not None and saved.get("tracking_uri") == self.uri:
            if self.call(self._existing, saved["run_id"]):
                return saved
            if self.off:
                return None
        if saved is not None:
            where = (
                "is not in this store"
                if saved.get("tracking_uri") == self.uri
                else f"was logged to {saved.get('tracking_uri')}"
            )
            err.print(
                f"warning: MLflow: the run {saved.get('run_id')} of {folder / MLFLOW_FILE} "
                f"{where}; logging to a new run in {self.uri}",
                markup=False,
                soft_wrap=True,
            )
        experiment = self.experiment()
        if experiment is None:
            return None
        run = self.call("create_run", experiment, tags=tags, run_name=Path(folder).name)
        if run is None:
            return None
        record = {
            "tracking_uri": self.uri,
            "experiment_id": experiment,
            "run_id": run.info.run_id,
        }
        return {**record, "parent_run_id": parent} if parent else record

    def _existing(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.store().get_run(run_id)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
                return False
            raise
        self.store().update_run(run_id, status="RUNNING")
        return True

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        """The params the run does not hold yet (a resumed run keeps its own), values as text
        cut to MLflow's limit, in batches."""
        from mlflow.entities import Param

        run = self.call("get_run", run_id)
        if run is None:
            return
        held = run.data.params
        cut = [key for key, value in params.items() if len(str(value)) > MAX_PARAM_CHARS]
        new = [
            Param(_key(key), str(value)[:MAX_PARAM_CHARS])
            for key, value in params.items()
            if _key(key) not in held
        ]
        for start in range(0, len(new), PARAMS_PER_BATCH):
            self.call("log_batch", run_id, params=new[start : start + PARAMS_PER_BATCH])
        if cut:
            self.call("set_tag", run_id, "mlpcli.truncated_params", ",".join(cut))

    def log_metrics(self, run_id: str, values: Iterable[tuple[str, float, int]]) -> None:
        """(key, value, step) triples, in batches."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(_key(key), float(value), now, step) for key, value, step in values]
        for start in range(0, len(metrics), METRICS_PER_BATCH):
            chunk = metrics[start : start + METRICS_PER_BATCH]
            self.call("log_batch", run_id, metrics=chunk)

    def log_folder_files(self, run_id: str, folder: Path, names: Iterable[str]) -> None:
        """The named files of a folder that exist, and its plots/, as artifacts."""
        for name in names:
            if (folder / name).is_file():
                self.call_files("log_artifact", run_id, str(folder / name))
        if (folder / PLOTS).is_dir() and any((folder / PLOTS).iterdir()):
            self.call_files("log_artifacts", run_id, str(folder / PLOTS), PLOTS)

    def end(self, run_id: str, status: str) -> None:
        self.call("set_terminated", run_id, status)


def _reason(exc: BaseException) -> str:
    """An error in a few words: a failed connection's own reason rather than the request's
    whole retry history."""
    line = first_line(str(exc), limit=2000) or type(exc).__name__
    if line.startswith("API request to "):
        for pattern in (r"\[Errno -?\d+\][^'\")]*", r"Read timed out", r"Max retries exceeded"):
            found = re.search(pattern, line)
            if found:
                return f"cannot reach the server ({found[0].strip()})"
    return line[:300]


def _key(key: str) -> str:
    """A key as MLflow accepts it (letters, digits, _ - . / and spaces)."""
    return re.sub(r"[^\w\-. /]", "_", key)


def _read_record(folder: Path) -> dict[str, str] | None:
    path = Path(folder) / MLFLOW_FILE
    if not path.is_file():
        return None
    try:
        record = read_json(path)
    except MlpError:
        return None
    return record if isinstance(record, dict) and "run_id" in record else None


def _write_record(folder: Path, record: dict[str, Any]) -> None:
    try:
        write_json(Path(folder) / MLFLOW_FILE, record)
    except MlpError as exc:  # the run goes on; the next resume opens a new MLflow run
        err.print(f"warning: {exc}", markup=False, soft_wrap=True)


def final_metrics(summary: dict[str, Any]) -> list[tuple[str, float, int]]:
    """final/{split}/{metric} and baseline/{name}/{split}/{metric} (with each baseline's
    stored_numbers and predict_ms_per_1k_rows) of a summary.json, at the last epoch's step."""
    step = int(summary.get("epochs_run") or 0)
    values: list[tuple[str, float, int]] = []
    for split, metrics in (summary.get("metrics") or {}).items():
        values += [(f"final/{split}/{k}", v, step) for k, v in metrics.items() if _num(v)]
    for name, entry in (summary.get("baselines") or {}).items():
        if name == "mlp" or not isinstance(entry, dict):  # the MLP's own are final/
            continue
        for split, metrics in (entry.get("metrics") or {}).items():
            values += [
                (f"baseline/{name}/{split}/{k}", v, step) for k, v in metrics.items() if _num(v)
            ]
        for key in ("stored_numbers", "predict_ms_per_1k_rows"):
            if _num(entry.get(key)):
                values.append((f"baseline/{name}/{key}", entry[key], step))
    return values


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class MlflowTracker(Callback):
    """Logs one run folder's training to its MLflow run: params once, each epoch's metrics.csv
    record (every column but epoch, step = epoch) once the checkpoint on disk holds that epoch,
    so that a resume never sends a step twice; then finish() or end() closes it.

    `run` is the record of a run made for this folder by a sweep (its nested trial run), an
    empty one when the sweep could not reach MLflow, None to open the folder's own.
    """

    def __init__(
        self,
        run_dir: Path,
        saver: CheckpointSaver,
        run: dict[str, str] | None = None,
    ) -> None:
        self.run_dir, self.saver, self.given = Path(run_dir), saver, run
        self.link: Link | None = None
        self.run_id: str | None = None
        self.pending: list[dict[str, float]] = []
        self.sent = 0  # the last epoch MLflow holds

    def on_train_start(self, trainer: Trainer) -> None:
        if self.given == {}:
            return
        try:
            self.link = Link(self.given["tracking_uri"] if self.given else None)
        except Exception as exc:  # an unparsable MLFLOW_TRACKING_URI, say
            err.print(f"warning: MLflow: {first_line(str(exc))}", markup=False, soft_wrap=True)
            return
        link = self.link
        config = trainer.config
        if self.given:
            record: dict[str, str] | None = self.given
            link.call("update_run", self.given["run_id"], status="RUNNING")
        else:
            record = link.open_run(self.run_dir, _tags("mlpcli.run_dir", self.run_dir))
        if record is None or link.off:
            return
        self.run_id = run_id = record["run_id"]
        _write_record(self.run_dir, record)
        link.call("set_tag", run_id, "mlpcli.epochs", str(config.train.epochs))
        link.log_params(run_id, flat_hparams(config))
        if trainer.epoch:  # resumed: what the checkpoint holds and MLflow may not yet
            history = link.call("get_metric_history", run_id, "train_loss") or []
            self.sent = max((m.step for m in history), default=0)
            self.pending = [r for r in trainer.history if int(r["epoch"]) > self.sent]
            self._send(trainer.epoch)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        if self.run_id is not None:
            self.pending.append(dict(record))
            self._send(self.saver.saved_epoch)

    def on_train_end(self, trainer: Trainer) -> None:
        if self.run_id is not None:  # the saver has written its last checkpoint before
            self._send(self.saver.saved_epoch)

    def _send(self, upto: int) -> None:
        assert self.link is not None and self.run_id is not None
        ready = [r for r in self.pending if self.sent < int(r["epoch"]) <= upto]
        if not ready:
            return
        values = [
            (key, value, int(r["epoch"]))
            for r in ready
            for key, value in r.items()
            if key != "epoch"
        ]
        self.link.log_metrics(self.run_id, values)
        self.sent = int(ready[-1]["epoch"])
        self.pending = [r for r in self.pending if int(r["epoch"]) > upto]

    def finish(self, summary: dict[str, Any]) -> None:
        """The final metrics and baselines, the folder's files, and the run FINISHED (FAILED
        for a run whose summary says failed)."""
        if self.link is None or self.run_id is None:
            return
        self.link.log_metrics(self.run_id, final_metrics(summary))
        if summary.get("stopped_by"):  # a search's pruned trial: completed, but cut short
            self.link.call("set_tag", self.run_id, "mlpcli.status", "pruned")
        self.link.log_folder_files(self.run_id, self.run_dir, RUN_ARTIFACTS)
        self.link.end(self.run_id, status_of(summary.get("status")))

    def end(self, status: str) -> None:
        """A run that failed (FAILED) or was stopped (KILLED): what its folder holds, and the
        status."""
        if self.link is None or self.run_id is None:
            return
        summary_path = self.run_dir / SUMMARY_FILE
        if status == "FAILED" and summary_path.is_file():
            try:
                self.link.log_metrics(self.run_id, final_metrics(read_json(summary_path)))
            except MlpError:
                pass
            self.link.log_folder_files(self.run_id, self.run_dir, RUN_ARTIFACTS)
        self.link.end(self.run_id, status)


def log_files(folder: Path, files: list[Path]) -> list[str]:
    """Files of a run or sweep folder (its report.html, say) added to the folder's MLflow run
    as artifacts; warnings in words, never an error."""
    record = _read_record(Path(folder))
    if record is None:  # the run never reached MLflow, and said so when it did not
        return []
    notes: list[str] = []
    try:
        link = Link(record["tracking_uri"])
    except Exception as exc:
        return [f"MLflow ({record['tracking_uri']}): {first_line(str(exc))}"]
    for path in files:
        link.call_files("log_artifact", record["run_id"], str(path))
        if link.off or link.files_off:
            notes.append(f"{path} not logged to MLflow ({record['tracking_uri']})")
            break
    return notes


class SweepTracking:
    """A sweep's parent run, and each trial's nested run, made by the sweep process before its
    trial starts: the workers create nothing, so they never race on creating the store's
    schema, the experiment or a run. The sweep's mlflow.json also keeps each trial's run (under
    "trials", by folder name) from the moment it is made, so that a resumed sweep reuses the
    run of a trial that never started, or whose worker died before writing its own record."""

    def __init__(
        self,
        link: Link,
        sweep_dir: Path,
        record: dict[str, str],
        known: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.link, self.sweep_dir, self.record = link, sweep_dir, record
        self.known = dict(known or {})  # trial folder name -> its run's record
        self.trials: dict[int, dict[str, str]] = {}  # trial index -> its run's record

    @classmethod
    def open(cls, sweep_dir: Path, config: Config, ray: bool = False) -> SweepTracking:
        """The parent run of the sweep folder (its mlflow.json's when resumed), its params the
        sweep's config; with Ray, a warning when the store is on this host's disk."""
        link = Link()
        if ray and local_store(link.uri):
            err.print(
                f"warning: MLflow ({link.uri}): a store on this host's disk, which Ray workers on "
                f"other hosts cannot reach; use a tracking server (MLFLOW_TRACKING_URI=http://...)",
                markup=False,
                soft_wrap=True,
            )
        tags = _tags("mlpcli.sweep_dir", sweep_dir)
        opened: dict[str, Any] = dict(link.open_run(Path(sweep_dir), tags) or {})
        known = opened.pop("trials", None)
        record: dict[str, str] = opened
        tracking = cls(link, Path(sweep_dir), record, known if isinstance(known, dict) else None)
        if record:
            tracking._write()
            link.log_params(record["run_id"], flat_hparams(config))
        return tracking

    def _write(self) -> None:
        _write_record(self.sweep_dir, {**self.record, "trials": self.known})

    def nest(self, index: int, run_dir: Path) -> dict[str, str]:
        """The record of a trial's nested run (the one its folder or the sweep's record has,
        when there is one); an empty one when MLflow cannot be reached."""
        if not self.record or self.link.off:
            return {}
        name = Path(run_dir).name
        record = _read_record(run_dir) or self.known.get(name)
        if record is None or record.get("tracking_uri") != self.link.uri:
            tags = _tags("mlpcli.run_dir", run_dir, self.record["run_id"])
            record = self.link.open_run(run_dir, tags, parent=self.record["run_id"])
            if record:
                self.known[name] = record
                self._write()
        self.trials[index] = record or {}
        return record or {}

    def finish(self, summary: dict[str, Any], results: Iterable[Any]) -> None:
        """The parent's metrics (best val metric, trial counts) and files, and its status; the
        trials no training process closed (failed before training, a kernel baseline, never
        started, a worker that died) too."""
        if not self.record or self.link.off:
            return
        run_id = self.record["run_id"]
        values: list[tuple[str, float, int]] = [
            (key, summary[key], 0)
            for key in ("completed", "failed", "pruned", "trials")
            if _num(summary.get(key))
        ]
        best = summary.get("best") or {}
        metric = summary.get("main_metric")
        for key in (f"val_{metric}", f"val_{metric}_mean"):
            if _num(best.get(key)):
                values.append((f"best/val_{metric}", best[key], 0))
                break
        self.link.log_metrics(run_id, values)
        self.link.log_folder_files(run_id, self.sweep_dir, SWEEP_ARTIFACTS)
        ended = {result.trial.index: result for result in results}
        for result in ended.values():
            self._close_trial(result)
        for index, record in self.trials.items():  # still RUNNING: nothing will close it now
            if self._open(record):
                result = ended.get(index)
                self.link.end(record["run_id"], status_of(result.status) if result else "KILLED")
        self.link.end(run_id, status_of(summary.get("status")))

    def _open(self, record: dict[str, str]) -> bool:
        run = self.link.call("get_run", record["run_id"]) if record else None
        return run is not None and run.info.status == "RUNNING"

    def _close_trial(self, result: Any) -> None:
        record = self.trials.get(result.trial.index)
        if not record:
            return
        trained = (result.run_dir / MLFLOW_FILE).is_file()
        if trained and result.trial.baseline != "kernel":
            return  # its training process logged and closed it
        run_id = record["run_id"]
        self.link.log_metrics(run_id, final_metrics(result.summary or {}))
        if result.run_dir.is_dir():
            _write_record(result.run_dir, record)
            self.link.log_folder_files(run_id, result.run_dir, RUN_ARTIFACTS)
        self.link.end(run_id, status_of(result.status))
