"""A toy multi-fidelity objective on the quickstart space, for the tests of the budgeted searchers
(successive halving, Hyperband, BOHB, Progressive Dynamic Hurdles)."""
from budget_trial import SCORE  # the operations' scores, shared with the nnictl tests' light trial
from nni_nasext.fidelity import split_budget
from nni_nasext.search_spaces import QuickstartSpace
from nni_nasext.space_spec import SpaceSpec

SPEC = SpaceSpec.from_space(QuickstartSpace())


def toy(sample):
    """More convolution is better; a larger budget scales every architecture up alike."""
    arch, budget = split_budget(sample)
    return sum(SCORE[v] for v in arch.values()) * (1 - 1 / (budget + 1))


def run(searcher, n, objective=toy, fail=lambda s: False):
    """Configure ``searcher`` on the quickstart space, ask and tell ``n`` times; the samples asked."""
    searcher.configure(SPEC)
    asked = []
    for _ in range(n):
        s = searcher.ask()
        asked.append(s)
        searcher.tell(s, None if fail(s) else objective(s))
    return asked


def asks_alike(a, b, n, objective=toy):
    """Ask ``a`` and ``b`` ``n`` times each, telling both the same results: they must ask the same
    (a searcher and its copy resumed from ``state_dict``)."""
    for _ in range(n):
        sa, sb = a.ask(), b.ask()
        assert sa == sb
        a.tell(sa, objective(sa))
        b.tell(sb, objective(sb))
