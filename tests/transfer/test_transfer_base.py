"""The public base of the transfer searchers (strategies/transfer/base.py)."""
import pytest

from nni_nasext.space_spec import SpaceSpec
from nni_nasext.strategies.transfer import RapidNAS, TAPAS, TransferGP, TransferSearcher, XferNAS

from conftest import shared_data


def test_every_transfer_searcher_shares_the_base():
    for cls in (TAPAS, TransferGP, XferNAS, RapidNAS):
        assert issubclass(cls, TransferSearcher)
    assert XferNAS.needs_target and RapidNAS.needs_target and not TAPAS.needs_target and not TransferGP.needs_target
    for cls in (XferNAS, RapidNAS):
        with pytest.raises(ValueError, match=f'{cls.__name__} needs a target'):
            cls()
    s = TransferGP(target='cifar100', tune_on_sources=False)
    assert s.target == 'cifar100' and s.sources == ['cifar10-valid', 'ImageNet16-120']
    assert TAPAS(sources=['cifar100']).sources == ['cifar100'] and TAPAS().sources is None
    with pytest.raises(ValueError, match='among the sources'):
        XferNAS(target='cifar100', sources=['cifar100'])
    with pytest.raises(ValueError, match='TAPAS sources must be NB201 datasets'):
        TAPAS(sources=['mnist'])


def test_a_space_other_than_the_nb201_cell_is_refused_by_name():
    other = SpaceSpec.from_json({'x': {'_type': 'choice', '_value': [1, 2]}})
    with pytest.raises(ValueError, match='TransferGP reads NAS-Bench-201 source tables: the space must be the NB201'):
        TransferGP(target='cifar100', tune_on_sources=False).configure(other)


def test_on_table_is_the_k_evaluation_protocol(table_queries):
    shared_data()
    none = TransferGP.on_table('cifar100', k=0, tune_on_sources=False)
    assert none['evaluated'] == [] and len(none['cell']) > 0 and 'settings' in none
    assert table_queries.get(('cifar100', 200), 0) == 0             # k = 0 reads nothing of the target
    three = TransferGP.on_table('cifar100', k=3, tune_on_sources=False)
    assert len(three['evaluated']) == 3 == table_queries[('cifar100', 200)]
    assert three['accuracy'] == max(a for _, a in three['evaluated'])
    assert three['evaluated'][0][0] == none['cell']                  # the first ask is the prediction of k = 0
    assert three['settings'] == none['settings']
