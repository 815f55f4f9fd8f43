"""The CLI stays instant: --help and config show import no torch, pandas or matplotlib, and\ntraining on a synthetic set imports no pandas, scikit-learn or torch._dynamo."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

HEAVY = (
    "torch",
    "pandas",
    "matplotlib",
    "sklearn",
    "numpy",
    "torch._dynamo",
    "onnx",
    "onnxruntime",
    "tensorboard",
    "optuna",
    "mlflow",
    "selenium",
)
ROOT = Path(__file__).resolve().parents[1]


def imported_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    script = (
        "import sys\n" + code + "\n"
        f"print('heavy:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        env={**os.environ, **(env or {})},
    )
    last = result.stdout.strip().splitlines()[-1]
    return set(filter(None, last.removeprefix("heavy:").split(",")))


def test_importing_the_cli_and_the_package_imports_nothing_heavy():
    assert imported_after("import mlpcli, mlpcli.cli") == set()


def test_help_and_config_show_import_nothing_heavy():
    for args in (
        ["--help"],
        ["config", "show", "configs/moons.yaml"],
        ["train", "--help"],
        ["sweep", "--help"],
    ):
        code = (
            "from mlpcli.cli import app\n"
            f"try:\n    app({args!r}, prog_name='mlp')\nexcept SystemExit as e:\n"
            "    assert e.code == 0, e.code"
        )
        assert imported_after(code) == set(), args


def test_shell_completion_imports_nothing_heavy():
    code = (
        "from mlpcli.cli import app\n"
        "try:\n    app(prog_name='mlp')\nexcept SystemExit as e:\n    assert e.code == 0, e.code"
    )
    env = {"_MLP_COMPLETE": "complete_bash", "COMP_WORDS": "mlp tr", "COMP_CWORD": "1"}
    assert imported_after(code, env) == set()


def test_the_api_is_reachable_from_the_package():
    """Every API name is mlpcli.api's, also once every subpackage is imported: a submodule of
    the same name (mlpcli.sweep, say) would take the function's place on the package."""
    import importlib
    import pkgutil

    import mlpcli
    import mlpcli.api

    for info in pkgutil.walk_packages(mlpcli.__path__, "mlpcli."):
        if info.name != "mlpcli.__main__":
            importlib.import_module(info.name)
    assert len(mlpcli.__all__) >= 10
    for name in mlpcli.__all__:
        assert getattr(mlpcli, name) is getattr(mlpcli.api, name), name


def test_python_dash_m_runs_the_cli():
    result = subprocess.run(
        [sys.executable, "-m", "mlpcli", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0 and "predict" in result.stdout


def test_synthetic_sources_and_file_splits_import_no_sklearn(tmp_path):
    """Every synthetic source, and a CSV file split with stratified classes, is read and split
    without scikit-learn (only the bundled real sets need it)."""
    table = tmp_path / "rows.csv"
    table.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{'xyz'[i % 3]}\n" for i in range(30)))
    code = (
        "from mlpcli.config.schema import build_config\n"
        "from mlpcli.data.sources import load_dataset\n"
        "from mlpcli.config.registry import SYNTHETIC_SOURCES\n"
        "for source in SYNTHETIC_SOURCES:\n"
        "    load_dataset(build_config({'data': {'source': source, 'n_samples': 50}}))\n"
        f"load_dataset(build_config({{'data': {{'source': 'csv', 'path': {str(table)!r}}}}}))"
    )
    assert "sklearn" not in imported_after(code)


def exit_code_and_imports(args: list[str]) -> tuple[int, set[str]]:
    code = (
        "from mlpcli.cli import app\n"
        f"try:\n    app({args!r}, prog_name='mlp')\nexcept SystemExit as e:\n"
        "    print('exit', e.code)"
    )
    script = (
        "import sys\n" + code + "\n"
        f"print('heavy:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
    )
    lines = result.stdout.strip().splitlines()
    exit_line = next(line for line in lines if line.startswith("exit "))
    return int(exit_line.split()[1]), set(filter(None, lines[-1].removeprefix("heavy:").split(",")))


def test_config_and_data_errors_of_train_and_sweep_come_before_torch(tmp_path):
    """A typo in a key, a value, a data file or a loss that does not fit the data's task is
    reported (exit 2) without importing torch: in the time `mlp config show` takes."""
    out = str(tmp_path / "runs")
    missing = tmp_path / "missing.yaml"
    missing.write_text(f"data: {{source: csv, path: {tmp_path / 'nope.csv'}}}\n")
    cases = [
        ["train", "configs/moons.yaml", "model.hidden=oops", "--out", out],
        ["train", "configs/moons.yaml", "optim.lrr=0.1", "--out", out],
        ["train", str(missing), "--out", out],
        ["train", "configs/moons.yaml", "loss=mse", "--out", out],
        ["train", "configs/moons.yaml", "train.early_stopping={monitor: val_r2}", "--out", out],
        ["sweep", str(missing), "--hidden", "2,3", "--out", out],
        ["sweep", "configs/moons.yaml", "--grid", "loss=bce,mse", "--out", out],
        ["train", "configs/moons.yaml", "--baseline", "kernl", "--out", out],
        ["sweep", "configs/moons.yaml", "--baseline", "linear,kernal", "--out", out],
        ["sweep", "configs/moons.yaml", "--search", "tpe", "--trials", "3", "--out", out],
        [
            *("sweep", "configs/moons.yaml", "--search", "tpe", "--trials", "3"),
            *("--space", "optim.lrr=log(1e-3,1e-1)", "--out", out),
        ],
    ]
    for args in cases:
        code, heavy = exit_code_and_imports(args)
        assert code == 2, args
        assert "torch" not in heavy and "optuna" not in heavy, args
    assert not (tmp_path / "runs").exists()  # no run or sweep folder was made


def test_train_and_eval_of_a_synthetic_config_import_no_pandas_sklearn_or_dynamo(tmp_path):
    """The start-up floor: a synthetic set needs no pandas (nor scikit-learn), and training
    needs no torch._dynamo (which torch.optim's optimisers import on first use)."""
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "data: {source: spirals, n_samples: 90}\nmodel: {hidden: [4]}\n"
        "train: {epochs: 2}\nschedule: {name: cosine}\n"
    )
    out = tmp_path / "runs"
    code, imported = exit_code_and_imports(["train", str(config), "--out", str(out), "-q"])
    assert code == 0 and imported == {"torch", "numpy", "matplotlib"}
    (run,) = out.iterdir()
    code, imported = exit_code_and_imports(["eval", str(run)])
    assert code == 0 and imported == {"torch", "numpy"}
    # Without the figure, matplotlib is not imported either.
    overrides = ["train.plots=false", "--name", "bare"]
    code, imported = exit_code_and_imports(["train", str(config), "--out", str(out), *overrides])
    assert code == 0 and imported == {"torch", "numpy"}
    assert not (out / "bare" / "plots").exists() and (out / "bare" / "model.safetensors").exists()


def test_a_grid_sweep_imports_no_optuna(tmp_path):
    """Optuna is for a search only: a grid runs, writes and draws without it."""
    out = tmp_path / "runs"
    args = ["sweep", "configs/moons.yaml", "train.epochs=1", "data.n_samples=200", "--hidden"]
    run = ["--workers", "1", "--out", str(out), "--name", "g"]
    code, imported = exit_code_and_imports([*args, "2,4", *run])
    assert code == 0 and "optuna" not in imported and "mlflow" not in imported
    assert (out / "g" / "results.csv").is_file()


def test_eval_and_predict_load_no_training_sweep_insight_or_plotting_code(tmp_path):
    """Serving sits beside training, not above it: scoring or using a model imports none of
    the code that trains, sweeps, inspects or draws (the layers contract keeps it so)."""
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "data: {source: moons, n_samples: 90}\nmodel: {hidden: [4]}\ntrain: {epochs: 2}\n"
    )
    out = tmp_path / "runs"
    code, _ = exit_code_and_imports(["train", str(config), "--out", str(out), "-q", "--name", "r"])
    assert code == 0
    rows = tmp_path / "new.csv"
    rows.write_text("x1,x2\n0.1,0.2\n1.0,-0.5\n")
    for args in (["eval", str(out / "r")], ["predict", str(out / "r"), str(rows)]):
        script = (
            "import sys\nfrom mlpcli.cli import app\n"
            f"try:\n    app({args!r}, prog_name='mlp')\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "print('loaded:' + ','.join(sorted(m for m in sys.modules if m.startswith('mlpcli'))))"
        )
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
        )
        loaded = done.stdout.strip().splitlines()[-1].removeprefix("loaded:").split(",")
        assert "mlpcli.serving.evaluate" in loaded, loaded
        unwanted = ("mlpcli.training", "mlpcli.sweeps", "mlpcli.insight", "mlpcli.plots")
        assert not [m for m in loaded if m.startswith(unwanted)], (args[0], loaded)


def test_report_imports_neither_mlflow_nor_selenium_and_a_wrong_target_no_torch(tmp_path):
    """A page is built from files: no MLflow, no browser driver; a path that is not a run or a
    sweep folder is refused before torch is imported. `python -m mlpcli` records its command
    line in summary.json as typed."""
    config = tmp_path / "tiny.yaml"
    config.write_text("data: {source: moons, n_samples: 90}\nmodel: {hidden: [4]}\n")
    args = ["train", str(config), "train.epochs=2", "--out", str(tmp_path), "--name", "r", "-q"]
    subprocess.run([sys.executable, "-m", "mlpcli", *args], cwd=ROOT, check=True)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["command"] == shlex.join(["mlp", *args])
    code, heavy = exit_code_and_imports(["report", str(tmp_path / "nowhere")])
    assert code == 2 and "torch" not in heavy
    code, heavy = exit_code_and_imports(["report", str(tmp_path / "r")])
    assert code == 0 and not {"mlflow", "selenium"} & heavy, heavy
    assert (tmp_path / "r" / "report.html").is_file()


def test_train_imports_the_page_code_only_with_report(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "data: {source: moons, n_samples: 90}\nmodel: {hidden: [4]}\ntrain: {epochs: 1}\n"
    )
    out = str(tmp_path / "runs")

    def pages_after(*args: str) -> bool:
        script = (
            "import sys\nfrom mlpcli.cli import app\n"
            f"try:\n    app({['train', str(config), '--out', out, '-q', *args]!r}, prog_name='mlp')\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print('pages', any(m.startswith('mlpcli.pages') for m in sys.modules))"
        )
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
        )
        return done.stdout.strip().splitlines()[-1] == "pages True"

    assert not pages_after("--name", "plain")
    assert pages_after("--name", "paged", "--report")  # the check sees the pages when they load
