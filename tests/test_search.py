"""`mlp sweep --search`: the same proposals for the same seed, pruned trials that stop early and
keep their files, the pruners' reasons checked against the trials' own metrics, trials that
`mlp train` reproduces, the summary and figures, refusals before any folder, and --resume."""

from __future__ import annotations

import csv
import json
import re
import shlex
import statistics
import sys
from pathlib import Path

import pytest
from conftest import assert_exit_2, mlp, pruning_trials, saved_figures
from safetensors.torch import load_file

from mlpcli.config.schema import build_config
from mlpcli.console import number
from mlpcli.errors import ConfigError
from mlpcli.sweeps.executors.local import InlineExecutor
from mlpcli.sweeps.runner import run_sweep

BASE = {
    "name": "s",
    "data": {"source": "moons", "n_samples": 300, "noise": 0.2},
    "model": {"hidden": [8]},
    "optim": {"lr": 0.02},
    "train": {"epochs": 6},
}
SPACE = ["optim.lr=log(1e-3,1e-1)", "model.hidden=choice([4],[8],[16,16])"]
KEYS = ["optim.lr", "model.hidden"]
# The other kinds of key, for trials that `mlp train` reproduces from their overrides.
MORE = [
    "model.dropout=uniform(0,0.3)",
    "train.batch_size=int(8,64,log)",
    "model.activation=choice(relu,{name: swish, beta: 2})",
]
# 13 trials: TPE's 10 random start-up trials, then three it models from the results.
TPE = {"search": "tpe", "trials": 13, "prune": "asha", "space": SPACE}


def sweep(out: Path, name: str, config: dict | None = None, **options) -> object:
    return run_sweep(
        build_config(config or BASE),
        out=out,
        name=name,
        executor=InlineExecutor(),
        quiet=True,
        **options,
    )


def rows(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def epoch_rows(run: Path) -> list[dict[str, str]]:
    """A run's metrics.csv, each epoch's values but its time."""
    with open(run / "metrics.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def value_at(run: Path, epoch: int, key: str = "val_accuracy") -> float:
    return float(epoch_rows(run)[epoch - 1][key])


def summary_of(sweep_dir: Path) -> dict:
    return json.loads((sweep_dir / "summary.json").read_text())


@pytest.fixture(scope="module")
def tpe(tmp_path_factory):
    """A TPE search with ASHA, through the API; and the same command through the CLI."""
    import mlpcli.sweeps.search.plots  # noqa: F401  imported now, so that its save_figure
    # is replaced for this sweep only (one imported later would keep the replacement)

    out = tmp_path_factory.mktemp("tpe")
    with pytest.MonkeyPatch.context() as patch:
        figures = saved_figures(patch)
        result = sweep(out, "api", **TPE)
    config = out / "s.yaml"
    config.write_text(json.dumps(BASE))
    spaces = [word for key in SPACE for word in ("--space", key)]
    done = mlp(
        "sweep", config, "--search", "tpe", "--trials", 13, "--prune", "asha", *spaces,
        "--workers", 1, "--out", out, "--name", "cli", "-q",
    )  # fmt: skip
    return {"api": result, "cli": done, "out": out, "figures": figures}


@pytest.fixture(scope="module")
def forced(tmp_path_factory):
    """A random search whose pruner prunes trials 1 and 3 at epoch 2, whatever their values."""
    out = tmp_path_factory.mktemp("forced")
    with pruning_trials((1, 3), step=2):
        result = sweep(
            out, "forced", {**BASE, "train": {"epochs": 5}},
            search="random", trials=4, prune="median", space=[*SPACE, *MORE],
        )  # fmt: skip
    return result


# ------------------------------------------------------------ the same proposals


def test_the_same_seed_proposes_the_same_parameters_and_another_seed_others(tpe, tmp_path):
    api, cli = tpe["api"], tpe["cli"]
    assert cli.exit_code == 0, cli.output
    first = [[row[k] for k in KEYS] for row in rows(api.sweep_dir)]
    assert len(first) == 13 and len({tuple(r) for r in first}) == 13
    # The same search from the CLI, one worker: every parameter proposed again, in order.
    assert [[row[k] for k in KEYS] for row in rows(tpe["out"] / "cli")] == first
    other = sweep(tmp_path, "seed1", {**BASE, "seed": 1}, **{**TPE, "trials": 3})
    proposed = [[row[k] for k in KEYS] for row in rows(other.sweep_dir)]
    assert len(proposed) == 3 and proposed != first[:3]


def test_a_cli_search_with_asha_prunes_and_exits_0(tpe):
    cli = tpe["cli"]
    assert cli.exit_code == 0, cli.output
    found = rows(tpe["out"] / "cli")
    pruned = [row for row in found if row["status"] == "pruned"]
    assert pruned and all(int(row["epochs"]) < 6 for row in pruned)
    assert {row["status"] for row in found} <= {"completed", "pruned"}


# ------------------------------------------------------------ pruned trials


def test_a_pruned_trial_stops_keeps_its_files_and_does_not_fail_the_sweep(forced, tmp_path):
    assert forced.failed == 0
    found = {row["trial"]: row for row in rows(forced.sweep_dir)}
    for name, row in found.items():
        run = Path(row["run_dir"])
        if name in ("trial-001", "trial-003"):
            assert row["status"] == "pruned"
            assert (row["epochs"], row["pruned_at"]) == ("2", "2")
            assert row["reason"].startswith("epoch 2: "), row["reason"]
            assert json.loads((run / "summary.json").read_text())["stopped_by"] == row["reason"]
            assert len(epoch_rows(run)) == 2
        else:
            assert row["status"] == "completed"
            assert (row["epochs"], row["pruned_at"], row["reason"]) == ("5", "", "")
        assert (run / "model.safetensors").is_file()
        assert list((run / "checkpoints").glob("*.pt")), name
    ranking = {row["trial"]: row for row in forced.summary["ranking"]}
    assert ranking["trial-001"]["reason"] == found["trial-001"]["reason"]
    assert forced.summary["pruned"] == 2 and forced.summary["status"] == "completed"
    done = mlp("eval", found["trial-001"]["run_dir"], "--json")
    assert done.exit_code == 0, done.output
    # The saved model of the pruned trial scores the test rows as its run recorded.
    saved = json.loads((Path(found["trial-001"]["run_dir"]) / "summary.json").read_text())
    assert json.loads(done.stdout)["accuracy"] == saved["metrics"]["test"]["accuracy"]


def reasons(sweep_dir: Path) -> list[tuple[dict[str, str], str]]:
    """Each pruned trial's row with its reason, in trial order."""
    return [(row, row["reason"]) for row in rows(sweep_dir) if row["status"] == "pruned"]


def test_asha_reasons_name_the_epoch_and_a_cut_off_the_trial_was_below(tpe):
    sweep_dir = tpe["api"].sweep_dir
    found = rows(sweep_dir)
    pruned = reasons(sweep_dir)
    assert pruned
    words = re.compile(
        r"epoch (\d+): val_accuracy ([\d.]+), not in the best (\d+) of (\d+) trials at epoch "
        r"(\d+) \(cut-off ([\d.]+)\)"
    )
    for row, reason in pruned:
        match = words.fullmatch(reason)
        assert match, reason
        epoch, value, keep, count, again, cutoff = match.groups()
        epoch = int(epoch)
        assert epoch == int(again) == int(row["pruned_at"]) == int(row["epochs"])
        assert epoch == 4  # ASHA's one rung below 6 epochs
        run = Path(row["run_dir"])
        assert value == number(value_at(run, epoch))
        # The trials ASHA compared: this one and the earlier ones that reached the epoch.
        index = int(row["point"])
        rivals = [
            value_at(Path(r["run_dir"]), epoch)
            for r in found
            if int(r["point"]) <= index and int(r["epochs"]) >= epoch
        ]
        assert int(count) == len(rivals) and int(keep) == max(1, len(rivals) // 4)
        assert cutoff == number(sorted(rivals)[-int(keep)])
        assert value_at(run, epoch) < sorted(rivals)[-int(keep)]


def test_median_reasons_name_the_epoch_and_the_median_of_completed_trials(tmp_path):
    result = sweep(
        tmp_path, "median", {**BASE, "train": {"epochs": 5}},
        search="random", trials=10, prune="median", space=SPACE,
    )  # fmt: skip
    assert result.failed == 0
    found = rows(result.sweep_dir)
    pruned = reasons(result.sweep_dir)
    assert pruned
    words = re.compile(
        r"epoch (\d+): best val_accuracy so far ([\d.]+), below the median ([\d.]+) of (\d+) "
        r"completed trials at epoch (\d+)"
    )
    for row, reason in pruned:
        match = words.fullmatch(reason)
        assert match, reason
        epoch, best, median, count, again = match.groups()
        epoch = int(epoch)
        assert epoch == int(again) == int(row["epochs"]) and 1 <= epoch < 5
        run = Path(row["run_dir"])
        own = max(value_at(run, e) for e in range(1, epoch + 1))
        assert best == number(own)
        # One trial at a time: the completed trials are the earlier ones (5 before any verdict).
        index = int(row["point"])
        completed = [
            value_at(Path(r["run_dir"]), epoch)
            for r in found
            if r["status"] == "completed" and int(r["point"]) < index
        ]
        assert int(count) == len(completed) >= 5
        assert median == number(statistics.median(completed))
        assert own < statistics.median(completed)


# ------------------------------------------------------------ reproduction


def test_mlp_train_with_a_trials_overrides_reproduces_it(forced, tmp_path):
    found = {row["trial"]: row for row in rows(forced.sweep_dir)}
    config = forced.sweep_dir / "sweep.yaml"
    for name in ("trial-002", "trial-003"):  # completed, pruned
        row = found[name]
        done = mlp("train", config, *shlex.split(row["overrides"]), "--out", tmp_path,
                   "--name", name, "-q")  # fmt: skip
        assert done.exit_code == 0, done.output
        again, trial = tmp_path / name, Path(row["run_dir"])
        if row["status"] == "completed":
            theirs = json.loads((trial / "summary.json").read_text())["metrics"]["val"]
            mine = json.loads((again / "summary.json").read_text())["metrics"]["val"]
            assert mine == theirs
            first, second = (
                load_file(trial / "model.safetensors"),
                load_file(again / "model.safetensors"),
            )
            assert first.keys() == second.keys()
            assert all((first[k] == second[k]).all() for k in first)
        else:  # the epochs it ran are the full run's first ones
            epochs = int(row["epochs"])
            assert epoch_rows(trial) == epoch_rows(again)[:epochs]
            assert len(epoch_rows(again)) == 5


# ------------------------------------------------------------ summary and figures


def test_summary_names_the_search_the_best_trial_and_the_epochs_saved(tpe):
    summary = summary_of(tpe["api"].sweep_dir)
    found = {row["trial"]: row for row in rows(tpe["api"].sweep_dir)}
    assert summary["search"] == {
        "kind": "tpe",
        "trials": 13,
        "prune": "asha",
        "space": dict(item.split("=", 1) for item in SPACE),
        "seed": 0,
        "objective": "val_accuracy",
        "direction": "maximize",
        "sampler": "TPESampler",
    }
    assert summary["trials"] == 13 and summary["failed"] == 0
    assert summary["pruned"] == sum(r["status"] == "pruned" for r in found.values()) > 0
    assert summary["completed"] == sum(r["status"] == "completed" for r in found.values())
    assert summary["epochs"] == sum(int(r["epochs"]) for r in found.values())
    assert summary["epochs"] < summary["epochs_without_pruning"] == 13 * 6
    ranking = summary["ranking"]
    assert len(ranking) == 13 and {r["trial"] for r in ranking} == set(found)
    statuses = [r["status"] for r in ranking]
    assert statuses == sorted(statuses, key=["completed", "pruned"].index)
    done = [r["val_accuracy"] for r in ranking if r["status"] == "completed"]
    assert done == sorted(done, reverse=True)
    best = ranking[0]
    assert summary["best_trial"] == best["trial"]
    assert best["val_accuracy"] == max(
        float(r["val_accuracy"]) for r in found.values() if r["status"] == "completed"
    )
    assert summary["overrides"] == found[best["trial"]]["overrides"]
    assert summary["best"]["point"] == int(found[best["trial"]]["point"])


def test_the_figures_are_written_and_load(tpe, forced):
    import matplotlib.image

    plots = tpe["api"].sweep_dir / "plots"
    for name in ("parallel.png", "intermediate.png", "importance.png"):
        image = matplotlib.image.imread(plots / name)
        assert image.ndim == 3 and min(image.shape[:2]) > 200, name
    assert tpe["api"].notes == []
    # Two completed trials are too few to rank the keys' importance: a note, no figure.
    plots = forced.sweep_dir / "plots"
    assert (plots / "parallel.png").is_file() and (plots / "intermediate.png").is_file()
    assert not (plots / "importance.png").exists()
    assert any("importance" in note for note in forced.notes), forced.notes


def test_the_best_trial_named_on_the_figure_is_the_summarys(tpe):
    import matplotlib.text

    figure = tpe["figures"]["intermediate.png"]
    named = [
        text.get_text()
        for text in figure.findobj(matplotlib.text.Text)
        if text.get_text().startswith("best: ")
    ]
    assert len(named) == 1, named
    summary = summary_of(tpe["api"].sweep_dir)
    assert named[0].split()[1] == summary["best_trial"], (named, summary["best_trial"])


# ------------------------------------------------------------ refusals


def test_without_optuna_a_search_names_the_extra_and_makes_no_folder(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    out = tmp_path / "runs"
    with pytest.raises(ConfigError, match=re.escape("mlpcli[search]")):
        sweep(out, "s", search="random", trials=2, space=SPACE)
    config = tmp_path / "s.yaml"
    config.write_text(json.dumps(BASE))
    done = mlp("sweep", config, "--search", "random", "--trials", 2, "--space", SPACE[0],
               "--out", out)  # fmt: skip
    assert_exit_2(done, "mlpcli[search]")
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--trials", "5"], "sweep.trials"),
        (["--search", "tpe", "--trials", "3"], "sweep.space"),
        (["--grid", "optim.lr=0.1,0.2"], "sweep.grid"),
        (["--seeds", "2"], "sweep.seeds"),
        (["--baseline", "linear"], "--baseline"),
        (["data.val_split=0"], "data.val_split"),
        (["--space", "optim.lrr=log(1e-3,1e-1)"], "optim.lrr"),
        (["--prune", "hyperband"], "sweep.prune"),
    ],
)
def test_refusals_name_the_key_before_any_folder(tmp_path, args, needle):
    config = tmp_path / "s.yaml"
    config.write_text(json.dumps(BASE))
    search = ["--search", "tpe", "--trials", "3", "--space", SPACE[0]]
    if args[0] in ("--trials", "--search"):
        search = []  # the search itself is what is incomplete
    out = tmp_path / "runs"
    assert_exit_2(mlp("sweep", config, *search, *args, "--out", out), needle)
    assert not out.exists()


# ------------------------------------------------------------ resume


class Counting(InlineExecutor):
    """Inline trials, noting which ran."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def run(self, tasks, progress=None, window=None):
        for result in super().run(tasks, progress, window):
            self.ran.append(result.trial.name)
            yield result


def test_resume_with_more_trials_runs_only_the_new_ones_and_fewer_is_refused(tmp_path):
    small = {**BASE, "train": {"epochs": 3}}
    first = sweep(tmp_path, "r", small, search="random", trials=3, space=SPACE)
    before = rows(first.sweep_dir)
    config = first.sweep_dir / "sweep.yaml"
    counting = Counting()
    grown = run_sweep(config, resume=first.sweep_dir, trials=5, executor=counting, quiet=True)
    assert counting.ran == ["trial-003", "trial-004"]
    after = rows(grown.sweep_dir)
    assert [r["trial"] for r in after] == [f"trial-{i:03d}" for i in range(5)]
    assert [[r[k] for k in KEYS] for r in after[:3]] == [[r[k] for k in KEYS] for r in before]
    assert grown.summary["search"]["trials"] == 5 and grown.summary["completed"] == 5
    with pytest.raises(ConfigError, match="sweep.trials"):
        run_sweep(config, resume=first.sweep_dir, trials=4, executor=InlineExecutor(), quiet=True)
    assert len(rows(first.sweep_dir)) == 5
    # A random search's proposals depend on the seed and the index, not on the resumes.
    whole = sweep(tmp_path, "whole", small, search="random", trials=5, space=SPACE)
    assert [[r[k] for k in KEYS] for r in rows(whole.sweep_dir)] == [
        [r[k] for k in KEYS] for r in after
    ]


def test_a_verdict_given_before_the_sweep_stopped_holds_when_it_is_resumed(tmp_path):
    """The sweep stops just after pruning trial 1 at epoch 2, before the trial ended: resumed,
    the trial runs again with its parameters and stops at epoch 2 with the same words."""
    import optuna

    import mlpcli.sweeps.search.driver as driver
    from mlpcli.errors import Interrupted

    class PruneOne(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return trial.last_step == 2 and trial.user_attrs.get("mlp_trial") == 1

    verdicts = []
    decide = driver.Search.on_progress

    def stop_after_verdict(self, event):
        verdict = decide(self, event)
        if verdict:
            verdicts.append(verdict)
            raise KeyboardInterrupt("SIGINT")  # Ctrl-C just after the pruner spoke
        return verdict

    small = {**BASE, "train": {"epochs": 5, "checkpoint_seconds": 0}}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(driver, "make_pruner", lambda optuna, name: PruneOne())
        patch.setattr(driver.Search, "on_progress", stop_after_verdict)
        with pytest.raises(Interrupted):
            sweep(tmp_path, "v", small, search="random", trials=3, prune="median", space=SPACE)
    assert len(verdicts) == 1
    sweep_dir = tmp_path / "v"
    proposed = {r["trial"]: [r[k] for k in KEYS] for r in rows(sweep_dir)}
    assert {r["trial"]: r["status"] for r in rows(sweep_dir)}["trial-001"] == "stopped"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(driver, "make_pruner", lambda optuna, name: optuna.pruners.NopPruner())
        resumed = run_sweep(
            sweep_dir / "sweep.yaml", resume=sweep_dir, executor=InlineExecutor(), quiet=True
        )
    assert resumed.failed == 0
    found = {r["trial"]: r for r in rows(sweep_dir)}
    assert [found["trial-001"][k] for k in KEYS] == proposed["trial-001"]
    one = found["trial-001"]
    assert (one["status"], one["epochs"], one["pruned_at"]) == ("pruned", "2", "2")
    assert one["reason"] == verdicts[0]
    assert len(epoch_rows(Path(one["run_dir"]))) == 2
    assert {found[n]["status"] for n in ("trial-000", "trial-002")} == {"completed"}


def test_a_rerun_trial_is_not_judged_again_on_epochs_its_first_run_went_past(tmp_path):
    """Trial 1 reported epochs 1 to 3, but its checkpoint holds an earlier epoch (as after a
    kill -9): on --resume it trains those epochs again, and the pruner is asked about it only
    after epoch 3, where its first run was let go on."""
    import shutil

    import optuna

    import mlpcli.sweeps.search.driver as driver
    from mlpcli.errors import Interrupted

    report = driver.Search.on_progress
    checkpoint = tmp_path / "r" / "trials" / "trial-001" / "checkpoints" / "last.pt"
    early = tmp_path / "early.pt"

    def stop_at_epoch_3(self, event):
        verdict = report(self, event)
        if event.trial.index == 1 and event.epoch == 2:
            shutil.copy(checkpoint, early)  # epoch 1's or 2's
        if event.trial.index == 1 and event.epoch == 3:
            raise KeyboardInterrupt("SIGINT")
        return verdict

    asked = []

    class Record(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            index = trial.user_attrs.get("mlp_trial")
            asked.append((index, trial.last_step))
            return index == 1 and trial.last_step <= 3  # never asked there: it went on

    small = {**BASE, "train": {"epochs": 6, "checkpoint_seconds": 0}}
    options = {"search": "random", "trials": 3, "prune": "median", "space": SPACE}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(driver, "make_pruner", lambda optuna, name: optuna.pruners.NopPruner())
        patch.setattr(driver.Search, "on_progress", stop_at_epoch_3)
        with pytest.raises(Interrupted):
            sweep(tmp_path, "r", small, **options)
    shutil.copy(early, checkpoint)
    sweep_dir = tmp_path / "r"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(driver, "make_pruner", lambda optuna, name: Record())
        resumed = run_sweep(
            sweep_dir / "sweep.yaml", resume=sweep_dir, executor=InlineExecutor(), quiet=True
        )
    assert resumed.failed == 0
    assert {r["trial"]: r["status"] for r in rows(sweep_dir)}["trial-001"] == "completed"
    assert [step for index, step in asked if index == 1] == [4, 5]


def test_resume_runs_a_failed_trial_again_with_its_parameters(tmp_path, monkeypatch):
    """As a grid's resume does: a trial that failed (here by a fault injected once) runs again
    under its name, with the parameters it was proposed, and the sweep ends with its N."""
    import mlpcli.training.run as run
    from mlpcli.errors import TrainingError

    train = run.train

    def failing(config, **options):
        if config.name == "trial-001":
            raise TrainingError("injected")
        return train(config, **options)

    options = {"search": "random", "trials": 3, "space": SPACE}
    monkeypatch.setattr(run, "train", failing)
    first = sweep(tmp_path, "f", **options)
    assert first.failed == 1
    sweep_dir = tmp_path / "f"
    proposed = {r["trial"]: [r[k] for k in KEYS] for r in rows(sweep_dir)}
    monkeypatch.setattr(run, "train", train)
    resumed = run_sweep(
        sweep_dir / "sweep.yaml", resume=sweep_dir, executor=InlineExecutor(), quiet=True
    )
    assert resumed.failed == 0
    found = rows(sweep_dir)
    assert [r["status"] for r in found] == ["completed"] * 3
    assert {r["trial"]: [r[k] for k in KEYS] for r in found} == proposed


def test_a_journal_that_cannot_be_written_ends_the_sweep_naming_it(tmp_path, monkeypatch):
    """A full disk under the journal is the sweep's error (exit 1, naming the file and how to
    go on), not one trial's failure after another."""
    import errno

    import optuna

    from mlpcli.errors import WriteError

    def full(self, value, step):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(optuna.trial.Trial, "report", full)
    with pytest.raises(WriteError) as caught:
        sweep(tmp_path, "j", search="random", trials=3, space=SPACE)
    message = str(caught.value)
    assert "search.journal" in message and "No space left on device" in message
    assert "--resume" in message and caught.value.exit_code == 1
    # The trial it was training is saved as failed, for --resume to run again.
    trial = summary_of(tmp_path / "j" / "trials" / "trial-000")
    assert trial["status"] == "failed"
    assert summary_of(tmp_path / "j")["status"] == "failed"


# ------------------------------------------------------------ the executor's window


def test_the_pool_pulls_a_task_only_when_a_result_made_room_and_none_after_an_interrupt(
    tmp_path,
):
    from mlpcli.sweeps.executors.local import LocalExecutor, TrialTask
    from mlpcli.sweeps.plan import plan_trials
    from mlpcli.sweeps.runner import with_plan

    config = with_plan(
        build_config({**BASE, "data": {"source": "moons", "n_samples": 100}}),
        hidden=[2, 3, 4, 5, 6, 7, 8],
        grid=["train.epochs=1"],
    )
    trials, configs = plan_trials(config)
    seen: list[str] = []  # the results the caller has received
    pulled: list[int] = []

    def tasks():
        for trial, raw in zip(trials, configs):
            # Two trials at most run: a third task only once a result came back.
            assert len(pulled) < 2 + len(seen), (pulled, seen)
            pulled.append(trial.index)
            yield TrialTask(trial, raw, tmp_path / trial.name)

    stream = LocalExecutor(2).run(tasks(), window=2)
    for result in stream:
        assert result.status == "completed", result.error
        seen.append(result.trial.name)
        if len(seen) == 3:
            break
    at_interrupt = list(pulled)
    assert len(at_interrupt) <= 4
    try:  # Ctrl-C while the caller holds a result: the running trials end, nothing new starts
        result = stream.throw(KeyboardInterrupt())
        while True:
            seen.append(result.trial.name)
            result = next(stream)
    except (KeyboardInterrupt, StopIteration):
        pass
    assert pulled == at_interrupt
    assert len(seen) <= len(pulled) < len(trials)
