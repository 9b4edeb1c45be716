"""The benchmark harness shared by the benchmarks (nni_nasext/benchmarking/__init__.py)."""
import pytest
from nni_nasext.benchmarking import run_tasks


def square(x):
    return x * x


def test_serial_and_worker_processes_give_every_result_once():
    seen = []
    serial = run_tasks(square, range(6), jobs=1, on_result=seen.append)
    assert serial == seen == [0, 1, 4, 9, 16, 25]            # serial: in task order
    pooled = run_tasks(square, range(6), jobs=2)
    assert sorted(pooled) == serial                           # workers: completion order, each once


def test_mean_se_and_compare_means_by_hand():
    import math

    import pytest
    from scipy import stats

    from nni_nasext.benchmarking import compare_means, mean_se
    s = mean_se([1.0, 2.0, 3.0, 4.0])
    assert s['mean'] == 2.5 and s['std'] == pytest.approx(math.sqrt(5 / 3)) and s['se'] == pytest.approx(s['std'] / 2)
    a, b = [5.0, 6.0, 7.0], [1.0, 2.0, 3.0, 4.0]
    c = compare_means(a, b)
    se = math.sqrt((1 / 3) + (5 / 3) / 4)
    assert c['diff'] == 3.5 and c['se_diff'] == pytest.approx(se) and c['a_better_by_more_than_se']
    assert c['welch_p'] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    close = compare_means([2.0, 3.0], [2.4, 2.5])        # higher by 0.05 with a standard error of 0.5
    assert close['diff'] > 0 and not close['a_better_by_more_than_se']
    with pytest.raises(ValueError):
        mean_se([])


def test_machine_info_and_command_line(monkeypatch):
    from nni_nasext.benchmarking import command_line, machine_info
    info = machine_info()
    assert info['cpu_count'] >= 1 and info['nni'] == '3.0' and info['torch']
    monkeypatch.setenv('NASEXT_DATA', '/data dir')
    assert command_line('experiments/x.py', ['--seeds', 3, 'a b']) == \
        "NASEXT_DATA='/data dir' python experiments/x.py --seeds 3 'a b'"


def test_markdown_table_and_write_results(tmp_path):
    import json
    from nni_nasext.benchmarking import markdown_table, write_results
    lines = markdown_table(['method', 'acc'], [['a|b', 91.5], ['c', 90]], align='lr')
    assert lines == ['| method | acc |', '|---|---:|', '| a\\|b | 91.5 |', '| c | 90 |']
    with pytest.raises(ValueError, match='2 cells under 1'):
        markdown_table(['x'], [[1, 2]])
    with pytest.raises(ValueError, match='l, r or c'):
        markdown_table(['x'], [], align='z')
    paths = write_results(tmp_path / 'new', 'stem', {'x': [1, 2]}, '# t')
    assert json.loads(paths['json'].read_text()) == {'x': [1, 2]}
    assert paths['md'].read_text() == '# t\n'


def test_describe_machine_reads_machine_info_and_old_strings():
    from nni_nasext.benchmarking import describe_machine, machine_info
    info = machine_info()
    line = describe_machine(info, ('torch',))
    assert line.startswith(f'{info["processor"]}, {info["cpu_count"]} cores') and line.endswith(f'torch {info["torch"]}')
    assert describe_machine('x86_64, 2 cores') == 'x86_64, 2 cores'
    assert describe_machine({'processor': 'arm', 'cores': 4}) == 'arm, 4 cores'


def test_small_val_classification_cuts_the_validation_set_with_its_seed():
    from nni_nasext.benchmarking.small_val import SmallValClassification
    full = SmallValClassification('digits', max_epochs=1, seed=0)
    a = SmallValClassification('digits', max_epochs=1, val_limit=50, seed=0)
    b = SmallValClassification('digits', max_epochs=1, val_limit=50, seed=0)
    (train_a, val_a), (_, val_b), (train_f, val_f) = a.dataloaders(), b.dataloaders(), full.dataloaders()
    assert len(val_a.dataset) == 50 < len(val_f.dataset) and len(train_a.dataset) == len(train_f.dataset)
    assert val_a.dataset.indices == val_b.dataset.indices and a.dataloaders()[1] is val_a   # seeded, kept
