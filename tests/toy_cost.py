"""A cost model for any space, for the generic tests of the hardware-aware searchers (which need one):
the length of the sample's values written out, a stand-in for a latency."""


def toy_cost(sample) -> float:
    return 1.0 + sum(len(str(v)) for v in sample.values())


#: what the cost-aware strategies need besides a seed, on any space
COST_ARGS = {'constrained_evolution': {'cost': toy_cost, 'limit': 1e9},
             'mnasnet': {'cost': toy_cost, 'target': 5.0},
             'pareto_evolution': {'cost': toy_cost}}
