"""The memory a config needs, estimated before anything large is allocated, and refused (exit 2)
when it exceeds what the machine has.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlpcli.config.registry import SYNTHETIC_SOURCES
from mlpcli.config.schema import build_config
from mlpcli.errors import ConfigError
from mlpcli.resources import memory

GIB = 1024**3
MOONS = Path(__file__).resolve().parent.parent / "configs" / "moons.yaml"


def config(**sections):
    raw = {"data": {"source": "moons", "n_samples": 100}, "model": {"hidden": [10]}}
    for key, value in sections.items():
        raw.setdefault(key, {}).update(value)
    return build_config(raw)


@pytest.mark.parametrize(
    "optim, copies",
    [
        # weights, gradients, the best weights, the checkpoint's weights, and the optimiser's
        # state twice: live and in the checkpoint
        ({"name": "adam"}, 8),
        ({"name": "adamw"}, 8),
        ({"name": "sgd"}, 4),
        ({"name": "sgd", "momentum": 0.9}, 6),
        ({"name": "rmsprop"}, 6),
        ({"name": "rmsprop", "momentum": 0.9}, 8),
    ],
)
def test_parameters_count_once_per_copy_the_run_keeps(optim, copies):
    estimate = memory.estimate(config(optim=optim), rows=0, in_dim=3, out_dim=2)
    assert estimate.parameters == 3 * 10 + 10 + 10 * 2 + 2
    assert estimate.model_bytes == 62 * 4 * copies


def test_no_bias_and_norm_layers_change_the_parameter_count():
    assert memory.estimate(config(model={"bias": False}), 0, 3, 2).parameters == 30 + 20
    assert memory.estimate(config(model={"norm": "batch"}), 0, 3, 2).parameters == 62 + 20


@pytest.mark.parametrize(
    "model",
    [
        {"hidden": [8, 8]},
        {"hidden": [8, 8], "bias": False},
        {"hidden": [8, 8], "norm": "layer"},
        {"hidden": [8, 8], "activation": {"name": "swish", "learnable": True}},
        {"hidden": [5], "activation": [{"name": "swish", "learnable": True}], "norm": "batch"},
        {"hidden": []},
    ],
)
def test_the_parameter_count_is_build_mlps(model):
    from mlpcli.model.factory import build_mlp, count_parameters

    cfg = config(model=model)
    built = count_parameters(build_mlp(cfg.model, 3, 2))
    assert memory.count_parameters(cfg, 3, 2) == built


def test_data_and_activations_scale_with_rows_and_batch():
    cfg = config(train={"batch_size": 50})
    loaded = memory.estimate(cfg, rows=1000, in_dim=3, out_dim=2)
    assert loaded.data_bytes == 1000 * (3 + 2) * 4  # float32 tensors
    before = memory.estimate(cfg, rows=1000, in_dim=3, out_dim=2, table_columns=4)
    assert before.data_bytes > loaded.data_bytes  # the table itself, not yet read
    assert loaded.activation_bytes >= 50 * 10 * 4
    small = memory.estimate(config(train={"batch_size": 100_000}), rows=300, in_dim=3, out_dim=2)
    assert small.activation_bytes < 100_000 * 10 * 4  # a batch holds at most the rows there are


def test_a_config_that_fits_passes_and_one_that_does_not_names_its_keys():
    cfg = config(model={"hidden": [50_000, 50_000]})
    estimate = memory.estimate(cfg, rows=1000, in_dim=2, out_dim=1)
    memory.check(estimate, cfg, available=(estimate.total * 2, "test"))
    with pytest.raises(ConfigError) as caught:
        memory.check(estimate, cfg, available=(4 * GIB, "MemAvailable"))
    message = str(caught.value)
    assert "model.hidden" in message and "[50000, 50000]" in message
    assert f"{estimate.total / 1e9:.1f} GB" in message and "4.3 GB available" in message
    assert "MemAvailable" in message


def test_synthetic_rows_are_estimated_from_the_source_before_they_exist():
    cfg = config(data={"n_samples": 400_000_000}, model={"hidden": [8]})
    estimate = memory.before_loading(cfg)
    assert estimate is not None and estimate.data_bytes > 400_000_000 * 3 * 4
    with pytest.raises(ConfigError, match=r"data.n_samples 400000000"):
        memory.check(estimate, cfg, available=(8 * GIB, "MemAvailable"))
    assert memory.before_loading(config(data={"source": "iris"})) is None  # read, not drawn


@pytest.mark.parametrize("source", sorted(SYNTHETIC_SOURCES))
def test_the_source_shapes_match_the_generated_data(source):
    from mlpcli.training.run import prepare

    cfg = config(data={"source": source, "n_samples": 60}, model={"hidden": [4]})
    session = prepare(cfg)
    entry = SYNTHETIC_SOURCES[source]
    assert (session.prep.in_dim, session.prep.out_dim) == (entry.features, entry.outputs)
    assert session.dataset.targets == list(entry.targets)


def test_available_memory_is_positive_and_says_what_limits_it():
    total, source = memory.available_memory()
    assert total > 0 and source


def limited(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, key",
    [
        ("model.hidden=[50000,50000]", "model.hidden"),
        ("data.n_samples=400000000", "data.n_samples"),
    ],
)
def test_oversized_configs_are_refused_before_allocating(tmp_path, override, key):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"source": "moons"}, "train": {"epochs": 1}}))
    run = subprocess.run(
        [sys.executable, "-m", "mlpcli", "train", str(path), override, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limited(4 * GIB),
    )
    assert run.returncode == 2, run.stderr
    message = " ".join(run.stderr.split())
    assert key in message and "GB" in message and "available" in message
    assert "Traceback" not in run.stderr
    assert not any(tmp_path.glob("c-*")), "no run folder for a refused config"


# ---------------------------------------------------------------- the process's own cgroup

V1_UNLIMITED = "9223372036854771712"  # what cgroup v1 reads for "no limit" (4 KiB pages)


def fake_proc(tmp_path, cgroups: list[str], mounts: list[tuple[str, str, str, str]]):
    """A fake /proc/self: its cgroup lines, and a mountinfo of (root, mount point, type,
    super options) lines."""
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text("".join(f"{line}\n" for line in cgroups))
    lines = [
        f"{30 + i} 23 0:{40 + i} {root} {point} rw,relatime - {fstype} {fstype} {options}\n"
        for i, (root, point, fstype, options) in enumerate(mounts)
    ]
    (proc / "mountinfo").write_text("".join(lines))
    return proc


def cgroup_files(folder, **files: str):
    """A fake cgroup folder with the given files (dots written as underscores)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("_", ".", 1)).write_text(f"{text}\n")
    return folder


def v2_tree(tmp_path, parent_max: str = str(3 * GIB), child_max: str = "max"):
    """A v2 hierarchy mounted at tmp/cg, the process in /box/job; /box holds 1 GiB already."""
    mount = tmp_path / "cg"
    cgroup_files(mount, **{"cgroup_controllers": "cpu memory"})  # the root has no memory.max
    cgroup_files(mount / "box", memory_max=parent_max, memory_current=str(GIB))
    cgroup_files(mount / "box" / "job", memory_max=child_max, memory_current=str(GIB // 4))
    return fake_proc(tmp_path, ["0::/box/job"], [("/", str(mount), "cgroup2", "rw")])


def test_a_v2_limit_set_on_a_parent_of_the_process_cgroup_applies(tmp_path):
    from mlpcli.resources import cgroup

    proc = v2_tree(tmp_path)
    limit = cgroup.tightest(proc)
    assert limit is not None
    assert limit.free == 2 * GIB and limit.file == tmp_path / "cg" / "box" / "memory.max"


def test_the_tightest_limit_along_the_path_wins_child_or_parent(tmp_path):
    from mlpcli.resources import cgroup

    proc = v2_tree(tmp_path, child_max=str(GIB))  # the child's own 1 GiB, 0.25 used
    limit = cgroup.tightest(proc)
    assert limit is not None and limit.free == GIB - GIB // 4
    assert limit.file == tmp_path / "cg" / "box" / "job" / "memory.max"


def test_max_everywhere_is_no_limit(tmp_path):
    from mlpcli.resources import cgroup

    assert cgroup.tightest(v2_tree(tmp_path, parent_max="max")) is None


def test_reclaimable_file_pages_do_not_count_as_used(tmp_path):
    from mlpcli.resources import cgroup

    proc = v2_tree(tmp_path)
    (tmp_path / "cg" / "box" / "memory.stat").write_text(
        f"anon 1000\nfile {GIB // 2}\ninactive_file {GIB // 2}\n"
    )
    limit = cgroup.tightest(proc)
    assert limit is not None and limit.free == 2 * GIB + GIB // 2


def v1_tree(tmp_path, limit: str = str(3 * GIB)):
    """A v1 host with a hybrid layout: the memory controller mounted at tmp/cg/memory, the
    process in /box/job there, and a unified v2 mount without a memory controller."""
    mount = tmp_path / "cg" / "memory"
    unlimited = {"memory_limit_in_bytes": V1_UNLIMITED}
    cgroup_files(mount, **unlimited, memory_usage_in_bytes=str(5 * GIB))
    cgroup_files(mount / "box", memory_limit_in_bytes=limit, memory_usage_in_bytes=str(GIB))
    cgroup_files(mount / "box" / "job", **unlimited, memory_usage_in_bytes=str(GIB // 4))
    (mount / "box" / "memory.stat").write_text(f"inactive_file 0\ntotal_inactive_file {GIB // 4}\n")
    cgroup_files(tmp_path / "cg" / "unified", cgroup_procs="1")
    return fake_proc(
        tmp_path,
        ["12:pids:/box/job", "4:memory:/box/job", "1:name=systemd:/box/job", "0::/"],
        [
            ("/", str(tmp_path / "cg" / "pids"), "cgroup", "rw,pids"),
            ("/", str(mount), "cgroup", "rw,memory"),
            ("/", str(tmp_path / "cg" / "unified"), "cgroup2", "rw"),
        ],
    )


def test_a_v1_memory_hierarchy_is_read_walking_up_from_the_process_cgroup(tmp_path):
    from mlpcli.resources import cgroup

    limit = cgroup.tightest(v1_tree(tmp_path))
    assert limit is not None
    # 3 GiB less what /box uses, its inactive file pages (total_, for the subtree) left out
    assert limit.free == 3 * GIB - GIB + GIB // 4
    assert limit.file == tmp_path / "cg" / "memory" / "box" / "memory.limit_in_bytes"


def test_v1s_unlimited_number_is_no_limit(tmp_path):
    from mlpcli.resources import cgroup

    assert cgroup.tightest(v1_tree(tmp_path, limit=V1_UNLIMITED)) is None


def test_a_container_mount_of_its_own_cgroup_is_read_at_the_mount_point(tmp_path):
    """Without a cgroup namespace, /proc/self/cgroup names the host's path (/docker/ID) and the
    container's mount has that path as its root."""
    from mlpcli.resources import cgroup

    mount = tmp_path / "sys fs"  # mountinfo escapes the space
    cgroup_files(mount, memory_max=str(3 * GIB), memory_current="0")
    proc = fake_proc(
        tmp_path,
        ["0::/docker/abc"],
        [("/docker/abc", str(mount).replace(" ", "\\040"), "cgroup2", "rw")],
    )
    limit = cgroup.tightest(proc)
    assert limit is not None and limit.free == 3 * GIB and limit.file == mount / "memory.max"


def test_no_cgroup_files_is_no_limit(tmp_path):
    from mlpcli.resources import cgroup

    assert cgroup.tightest(tmp_path / "nothing") is None
    proc = fake_proc(tmp_path, ["0::/../elsewhere"], [("/", str(tmp_path), "cgroup2", "rw")])
    assert cgroup.tightest(proc) is None  # outside the namespace's view: nothing to read


def test_available_memory_names_the_cgroup_limit_that_binds(tmp_path):
    proc = v2_tree(tmp_path)
    free, source = memory.available_memory(proc)
    assert free == 2 * GIB
    assert source == f"the cgroup memory limit in {tmp_path / 'cg' / 'box' / 'memory.max'}"


# `mlp ARGS` with the cgroup files read from a fake /proc/self (argv[1]).
IN_FAKE_CGROUP = """
import sys
from pathlib import Path
from mlpcli.resources import cgroup
cgroup.PROC = Path(sys.argv[1])
sys.argv = ["mlp", *sys.argv[2:]]
from mlpcli.cli import app
app(prog_name="mlp")
"""


def mlp_in_fake_cgroup(proc, *args) -> subprocess.CompletedProcess:
    """`mlp ARGS` under an 8 GiB address-space limit (looser than the fake cgroup's), so that a
    check that missed the cgroup cannot take the machine down."""
    return subprocess.run(
        [sys.executable, "-c", IN_FAKE_CGROUP, str(proc), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limited(8 * GIB),
    )


def refused_by(run: subprocess.CompletedProcess, limit_file, *needles: str) -> None:
    message = " ".join(run.stderr.split())
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert f"the cgroup memory limit in {limit_file}" in message, message
    for needle in needles:
        assert needle in message, message


def test_train_in_a_nested_v2_cgroup_of_3_gb_refuses_400m_rows(tmp_path):
    proc = v2_tree(tmp_path)
    run = mlp_in_fake_cgroup(proc, "train", MOONS, "data.n_samples=400000000", "--out", tmp_path)
    refused_by(run, tmp_path / "cg" / "box" / "memory.max", "data.n_samples 400000000")
    assert "2.1 GB available" in " ".join(run.stderr.split())
    assert not any(tmp_path.glob("moons-*")), "no run folder for a refused config"


def test_train_under_a_v1_cgroup_limit_refuses_400m_rows(tmp_path):
    proc = v1_tree(tmp_path)
    run = mlp_in_fake_cgroup(proc, "train", MOONS, "data.n_samples=400000000", "--out", tmp_path)
    limit_file = tmp_path / "cg" / "memory" / "box" / "memory.limit_in_bytes"
    refused_by(run, limit_file, "data.n_samples 400000000")


def test_an_npz_expanding_past_the_cgroup_limit_is_refused_unread(tmp_path):
    """40 MB of arrays in a file of a few KB: refused when the cgroup leaves 100 MB (the check
    keeps 80% of it, and counts 3 bytes a byte of array)."""
    import numpy as np

    proc = v2_tree(tmp_path, child_max=str(GIB // 4 + 100_000_000))
    np.savez_compressed(tmp_path / "zeros.npz", X=np.zeros((1_000_000, 4)), y=np.zeros(1_000_000))
    assert (tmp_path / "zeros.npz").stat().st_size < 1_000_000
    (tmp_path / "exp.yaml").write_text("data: {source: npz, path: zeros.npz}\n")
    run = mlp_in_fake_cgroup(proc, "train", tmp_path / "exp.yaml", "--out", tmp_path / "runs")
    assert run.returncode == 2, run.stderr
    message = " ".join(run.stderr.split())
    assert "zeros.npz" in message and "114.4 MiB of memory" in message  # 3 x 40 MB
    # 80% of the 100 MB the cgroup leaves
    assert f"76.3 MiB available (the cgroup memory limit in {tmp_path / 'cg'}" in message
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_eval_of_a_model_claiming_400m_rows_is_refused_under_the_cgroup_limit(tmp_path):
    import json

    from safetensors import safe_open
    from safetensors.torch import save

    proc = v2_tree(tmp_path)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"source": "moons", "n_samples": 300}}))
    args = ("train", path, "train.epochs=1", "--out", tmp_path, "--name", "r", "-q")
    assert mlp_in_fake_cgroup(proc, *args).returncode == 0
    model = tmp_path / "r" / "model.safetensors"
    with safe_open(str(model), framework="pt") as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
        metadata = json.loads(handle.metadata()["mlpcli"])
    metadata["config"]["data"]["n_samples"] = 400_000_000
    metadata.pop("data")  # as a model saved before fingerprints were recorded
    claims = tmp_path / "claims.safetensors"
    claims.write_bytes(
        save(tensors, metadata={"format": "mlpcli-model", "mlpcli": json.dumps(metadata)})
    )
    run = mlp_in_fake_cgroup(proc, "eval", claims)
    refused_by(run, tmp_path / "cg" / "box" / "memory.max", "data.n_samples 400000000")


@pytest.fixture
def real_cgroup():
    """A new cgroup inside this process's own with a memory limit of 3 GiB, v2 or v1, removed
    afterwards; skipped where this machine does not let the tests make one."""
    from mlpcli.resources import cgroup

    for own in cgroup.folders():
        child = own.folder / f"mlpcli-test-{os.getpid()}"
        try:
            child.mkdir()
        except OSError:
            continue
        try:
            # v2 gives a child memory.max only when the parent lends it the controller
            (child / own.version.limit).write_text(str(3 * GIB))
        except OSError:
            child.rmdir()
            continue
        try:
            yield child / own.version.limit
        finally:
            child.rmdir()
        return
    pytest.skip("no cgroup with a memory controller that this process may make children in")


def in_cgroup(limit_file: Path, address_space: int):
    """A preexec_fn that moves the child into the cgroup of limit_file and limits its address
    space (a looser bound: the cgroup is the limit under test)."""

    def enter() -> None:
        (limit_file.parent / "cgroup.procs").write_text(str(os.getpid()))
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    return enter


@pytest.mark.slow
def test_train_in_a_real_nested_cgroup_of_3_gb_refuses_400m_rows(tmp_path, real_cgroup):
    if memory.available_memory()[0] < 4 * GIB:
        pytest.skip("the machine has less memory left than the cgroup would allow")
    run = subprocess.run(
        [sys.executable, "-m", "mlpcli", "train", MOONS, "data.n_samples=400000000"]
        + ["--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=in_cgroup(real_cgroup, 8 * GIB),
    )
    refused_by(run, real_cgroup, "data.n_samples 400000000", "24.0 GB")
    assert not any(tmp_path.glob("moons-*")), "no run folder for a refused config"


# ---------------------------------------------------------------- a refusal points to streaming


def parquet_config(hidden=(10,), **data):
    data = {"source": "parquet", "path": "big.parquet", **data}
    return build_config({"data": data, "model": {"hidden": list(hidden)}})


@pytest.mark.parametrize(
    "data, remedy",
    [
        ({}, "; or set data.stream: true to read it a row group at a time"),
        (
            {"source": "csv", "path": "big.csv"},
            "; or convert it to Parquet and set data.stream: true",
        ),
    ],
)
def test_data_too_large_for_memory_is_told_how_to_stream(data, remedy):
    cfg = parquet_config(**data)
    needs = memory.estimate(cfg, rows=50_000_000, in_dim=16, out_dim=1)
    with pytest.raises(ConfigError) as caught:
        memory.check(needs, cfg, available=(GIB, "MemAvailable"))
    message = str(caught.value)
    assert "50,000,000 rows" in message and message.endswith(remedy)


@pytest.mark.parametrize(
    "cfg, rows",
    [
        (parquet_config(stream=True), 50_000_000),  # streams already
        (config(data={"n_samples": 400_000_000}), 400_000_000),  # drawn: nothing to stream
        (parquet_config(hidden=[20_000, 20_000]), 10),  # the model does not fit, not the data
    ],
)
def test_no_stream_hint_where_streaming_would_not_help(cfg, rows):
    needs = memory.estimate(cfg, rows=rows, in_dim=16, out_dim=1)
    with pytest.raises(ConfigError) as caught:
        memory.check(needs, cfg, available=(GIB, "MemAvailable"))
    assert "data.stream" not in str(caught.value)


@pytest.mark.parametrize(
    "name, remedy",
    [
        ("zeros.parquet", "or set data.stream: true to read it a row group at a time"),
        ("zeros.csv", "or convert it to Parquet and set data.stream: true"),
    ],
)
def test_a_file_too_large_to_read_names_data_stream(tmp_path, name, remedy):
    """Refused unread under a cgroup that leaves 8 MB (80% of 10 MB): 32 MB of Parquet columns
    (in a file of a few KB), or 12 MB of CSV (2 MB of text)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    proc = v2_tree(tmp_path, child_max=str(GIB // 4 + 10_000_000))
    if name.endswith(".parquet"):
        table = pa.table({name: np.zeros(1_000_000) for name in ("x1", "x2", "x3", "y")})
        pq.write_table(table, tmp_path / name, use_dictionary=False, compression="zstd")
    else:
        (tmp_path / name).write_text("x,y\n" + "0.5,1\n" * 350_000)
    source = name.rsplit(".", 1)[1]
    (tmp_path / "big.yaml").write_text(f"data: {{source: {source}, path: {name}, target: y}}\n")
    run = mlp_in_fake_cgroup(proc, "train", tmp_path / "big.yaml", "--out", tmp_path / "runs")
    refused_by(run, tmp_path / "cg" / "box" / "job" / "memory.max", name, remedy)
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- in-memory loading

# An mlp train of a Parquet file of numbers peaks within this many copies of its float32 table
# above the same run on 2,000 rows (imports, model, a run folder). Reading it whole with Arrow
# and pandas, splitting it twice and building the matrix in float64 took over 6; holding the
# split tables beside their tensors while training, about 3.2; measured now: 2.7.
TABLE_COPIES_AT_PEAK = 3


def peak_mib(*args: object, cwd: Path) -> float:
    """The peak resident memory of one child process, from its own rusage."""
    child = subprocess.Popen(
        [sys.executable, *map(str, args)],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(child.pid, 0)
    assert status == 0, child.stderr.read() if child.stderr else status
    return usage.ru_maxrss / 1024  # KiB on Linux


def numbers_parquet(path: Path, rows: int) -> int:
    """16 float32 features and a float32 target, in row groups of 50,000; the table's bytes."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    x = np.random.default_rng(0).standard_normal((rows, 16), dtype=np.float32)
    columns = {f"x{i + 1}": x[:, i] for i in range(16)} | {"y": x[:, 0] - 2 * x[:, 1]}
    pq.write_table(pa.table(columns), path, row_group_size=50_000)
    return rows * 17 * 4


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB, as Linux gives it")
def test_training_on_a_parquet_file_peaks_within_a_few_copies_of_its_table(tmp_path):
    table = numbers_parquet(tmp_path / "big.parquet", 200_000)
    numbers_parquet(tmp_path / "small.parquet", 2_000)
    (tmp_path / "c.yaml").write_text(
        "task: regression\ndata: {source: parquet, path: big.parquet}\nmodel: {hidden: [8]}\n"
        "train: {epochs: 1, batch_size: 4096, plots: false, diagnostics: false}\n"
    )
    train = ("-m", "mlpcli", "train", "c.yaml", "-q", "--out", "runs")
    fixed = peak_mib(*train, "data.path=small.parquet", cwd=tmp_path)
    peak = peak_mib(*train, cwd=tmp_path)
    assert peak - fixed < TABLE_COPIES_AT_PEAK * table / 2**20, (peak, fixed, table / 2**20)


def oracle_frame(path: Path):
    """What the reader gave before it read row groups itself."""
    import pyarrow.parquet as pq

    frame = pq.read_table(path).to_pandas()
    frame.columns = [str(c) for c in frame.columns]
    return frame


def test_a_parquet_file_of_numbers_reads_as_arrow_and_pandas_read_it(tmp_path):
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlpcli.data.files import _read_parquet_numbers, read_table

    rng = np.random.default_rng(3)
    n = 1_000
    columns = {
        "f32": rng.standard_normal(n, dtype=np.float32),
        "f64": rng.standard_normal(n) * 1e300,
        "i8": rng.integers(-128, 127, n, dtype=np.int8),
        "u16": rng.integers(0, 65535, n, dtype=np.uint16),
        "i64": rng.integers(-(2**62), 2**62, n),
        "flag": rng.random(n) > 0.5,
    }
    pq.write_table(pa.table(columns), tmp_path / "arrow.parquet", row_group_size=300)
    pd.DataFrame(columns).to_parquet(tmp_path / "pandas.parquet", row_group_size=256)
    for name in ("arrow.parquet", "pandas.parquet"):
        assert _read_parquet_numbers(tmp_path / name) is not None  # read a row group at a time
        frame, oracle = read_table(tmp_path / name), oracle_frame(tmp_path / name)
        pd.testing.assert_frame_equal(frame, oracle, check_exact=True)
        assert list(frame.dtypes) == list(oracle.dtypes)


def other_parquet(why: str):
    """A small table the row-group reader leaves to Arrow and pandas, and why."""
    import pandas as pd

    numbers = {"x": [1.0, 2.0, 3.0]}
    return {
        "a missing value": pd.DataFrame({"x": [1.0, None, 3.0], "y": [1, 2, 3]}),
        "text": pd.DataFrame(numbers | {"y": ["a", "b", "a"]}),
        "an extension dtype": pd.DataFrame(numbers | {"y": pd.array([1, 2, 3], dtype="Int64")}),
        "an index": pd.DataFrame(numbers | {"y": [1, 2, 3]}, index=[5, 6, 7]),
        "a range index from 1": pd.DataFrame(numbers | {"y": [1, 2, 3]}, index=range(1, 4)),
    }[why]


@pytest.mark.parametrize(
    "why", ["a missing value", "text", "an extension dtype", "an index", "a range index from 1"]
)
def test_other_parquet_files_read_as_before(tmp_path, why):
    import pandas as pd

    from mlpcli.data.files import _read_parquet_numbers, read_table

    other_parquet(why).to_parquet(tmp_path / "t.parquet", row_group_size=2)
    assert _read_parquet_numbers(tmp_path / "t.parquet") is None
    frame, oracle = read_table(tmp_path / "t.parquet"), oracle_frame(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(frame, oracle, check_exact=True)


def class_targets():
    """Class columns whose labels sort differently as numbers and as text, as DataFrame columns
    and as Columns hold them."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(5)
    ints = rng.choice([2, 10, 1, 33, -4], 500)
    floats = rng.choice([0.5, 10.0, 1e20, -3.0, 2.25], 500)
    return {
        "ints": pd.Series(ints),
        "floats": pd.Series(floats),
        "float32 columns": floats.astype(np.float32),
        "int columns": ints,
        "booleans": pd.Series(ints > 1),
        "text": pd.Series(ints.astype(str)),
        "-0.0 and 0.0": pd.Series(np.where(ints > 2, -0.0, 0.0)),
    }


@pytest.mark.parametrize("kind", list(class_targets()))
def test_strata_are_the_labels_text_as_codes(kind):
    import numpy as np

    from mlpcli.data.sources import split_rows, strata
    from mlpcli.data.splits import split_indices

    target = class_targets()[kind]
    text = target.astype(str) if isinstance(target, np.ndarray) else target.astype(str).to_numpy()
    codes = strata(target)
    # numbered in the order of the labels' text: the same groups, sorted the same way
    assert np.array_equal(
        np.unique(codes, return_inverse=True)[1], np.unique(text, return_inverse=True)[1]
    )
    # The rows split_frame gave twice with the text as strata, taken once.
    rest, test = split_indices(len(text), 0.2, 7, text)
    kept, val = split_indices(len(rest), 0.25, 8, text[rest])
    train_rows, val_rows, test_rows = split_rows(len(text), (0.2, 7), (0.25, 8), codes)
    assert train_rows is not None
    for got, want in ((train_rows, rest[kept]), (val_rows, rest[val]), (test_rows, test)):
        assert np.array_equal(got, want)


def test_no_split_keeps_the_table_whole():
    from mlpcli.data.sources import split_rows

    train, val, test = split_rows(10, (0.0, 1), (0.0, 2), None)
    assert train is None and len(val) == len(test) == 0


def test_transform_writes_what_concatenating_each_columns_values_gives():
    import numpy as np
    import pandas as pd

    from mlpcli.data.columns import Columns
    from mlpcli.data.preprocess import Preprocessor, standardise

    rng = np.random.default_rng(2)
    n = 2_000
    frame = pd.DataFrame(
        {
            "a": rng.standard_normal(n) * 1e6 + 3,
            "color": rng.choice(["red", "green", "blue"], n),
            "b": rng.standard_normal(n).astype(np.float32),
            "k": rng.integers(0, 9, n),
            "size": rng.choice(["s", "m"], n),
            "y": rng.standard_normal(n),
        }
    )
    features = ["a", "color", "b", "k", "size"]
    prep = Preprocessor.fit(frame, features, ["y"], "regression")
    blocks = []
    for col in features:
        if col in prep.numeric:
            values = frame[col].to_numpy(dtype=np.float64)
            blocks.append(standardise(values, *prep.numeric[col])[:, None])
        else:
            codes = pd.Categorical(frame[col], categories=prep.categorical[col]).codes
            blocks.append(np.eye(len(prep.categorical[col]))[codes])
    oracle = np.concatenate(blocks, axis=1).astype(np.float32)
    matrix = prep.transform(frame)
    assert matrix.dtype == np.float32 and matrix.shape == oracle.shape
    assert np.array_equal(matrix.view(np.uint32), oracle.view(np.uint32))
    numbers = Columns({c: frame[c].to_numpy() for c in ("a", "b", "k", "y")})
    prep = Preprocessor.fit(numbers, ["a", "b", "k"], ["y"], "regression")
    oracle = np.concatenate(
        [standardise(numbers[c].astype(np.float64), *prep.numeric[c])[:, None] for c in "abk"],
        axis=1,
    ).astype(np.float32)
    assert np.array_equal(prep.transform(numbers).view(np.uint32), oracle.view(np.uint32))
