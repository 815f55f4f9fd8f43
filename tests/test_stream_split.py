"""Splits of a stream from a hash of each row's position: deterministic, disjoint, covering,
in the asked fractions, and the same however the rows are cut into row groups."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlpcli.config.schema import Config
from mlpcli.data.stream import TEST, TRAIN, VAL, SplitRule, StreamSource
from mlpcli.data.stream.hashsplit import splitmix64


def test_splitmix64_is_the_reference_generator():
    # The first outputs of SplitMix64 seeded with 0 (Vigna's splitmix64.c): state += golden
    # ratio, then the finaliser, which is what splitmix64() applies to its argument.
    golden = 0x9E3779B97F4A7C15
    states = np.array([golden * i % 2**64 for i in range(3)], dtype=np.uint64)
    assert splitmix64(states).tolist() == [
        0xE220A8397B1DCDAF,
        0x6E789E6AA1B965F4,
        0x06C45D188009454F,
    ]


def test_codes_are_deterministic_and_depend_on_position_key_and_seed():
    rule = SplitRule(seed=3, test=0.2, val=0.2)
    codes = rule.codes(key=12345, first=0, n=1000)
    assert codes.dtype == np.int8 and set(np.unique(codes)) == {TRAIN, VAL, TEST}
    assert np.array_equal(codes, rule.codes(12345, 0, 1000))
    assert np.array_equal(codes[400:], rule.codes(12345, 400, 600))  # by row, not by read
    assert not np.array_equal(codes, rule.codes(12346, 0, 1000))
    assert not np.array_equal(codes, SplitRule(4, 0.2, 0.2).codes(12345, 0, 1000))


def test_fractions_are_within_four_standard_deviations():
    n = 100_000
    for test, val in [(0.2, 0.2), (0.1, 0.0), (0.0, 0.3), (0.25, 0.05)]:
        codes = SplitRule(seed=0, test=test, val=val).codes(2**63 + 7, 10**9, n)
        for code, p in [(TEST, test), (VAL, val), (TRAIN, 1 - test - val)]:
            count = int((codes == code).sum())
            assert abs(count - n * p) <= 4 * np.sqrt(n * p * (1 - p)), (test, val, code, count)


def test_nested_fractions_move_only_the_rows_they_must():
    """A larger test fraction only takes rows from val and train; the val+test union grows."""
    small = SplitRule(0, 0.1, 0.2).codes(99, 0, 10_000)
    large = SplitRule(0, 0.2, 0.1).codes(99, 0, 10_000)
    assert np.all(large[small == TEST] == TEST)
    assert np.array_equal(small == TRAIN, large == TRAIN)


def test_from_config_uses_the_data_seed():
    config = Config.model_validate(
        {"seed": 5, "data": {"source": "parquet", "path": "x", "stream": True, "val_split": 0.1}}
    )
    assert SplitRule.from_config(config) == SplitRule(5, 0.2, 0.1)
    config = Config.model_validate(
        {"seed": 5, "data": {"source": "parquet", "path": "x", "stream": True, "seed": 9}}
    )
    assert SplitRule.from_config(config).seed == 9


def _codes_per_row(folder, rule):
    source = StreamSource.open(folder)
    per_file = {name: [] for name in source.names}
    for group in source.groups:
        key = source.keys[group.file]
        per_file[source.names[group.file]].append(rule.codes(key, group.first, group.rows))
    return {name: np.concatenate(parts) for name, parts in per_file.items()}


def test_the_same_rows_in_other_row_groups_split_alike(parquet_folder, tmp_path):
    folder = parquet_folder(files=2, groups=5, rows=200)
    other = tmp_path / "other"
    other.mkdir()
    for path in sorted(folder.iterdir()):
        pq.write_table(pq.read_table(path), other / path.name, row_group_size=333)
    assert len(StreamSource.open(other).groups) == 2 * 4
    rule = SplitRule(seed=1, test=0.2, val=0.2)
    first, second = _codes_per_row(folder, rule), _codes_per_row(other, rule)
    assert first.keys() == second.keys()
    for name in first:
        assert np.array_equal(first[name], second[name])


def test_every_row_is_in_exactly_one_split(tmp_path):
    pq.write_table(pa.table({"x": np.arange(5000.0)}), tmp_path / "a.parquet", row_group_size=777)
    source = StreamSource.open(tmp_path / "a.parquet")
    rule = SplitRule(seed=0, test=0.3, val=0.3)
    codes = np.concatenate([rule.codes(source.keys[0], g.first, g.rows) for g in source.groups])
    parts = [np.flatnonzero(codes == c) for c in (TRAIN, VAL, TEST)]
    assert sum(len(p) for p in parts) == 5000
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(5000))
