"""Arguments for the generic contract tests (every strategy on every space or JSON type): a cost model
for any space, which the hardware-aware searchers need (the length of the sample's values written out,
a stand-in for a latency), and small models for the predictor-guided searchers."""


def toy_cost(sample) -> float:
    return 1.0 + sum(len(str(v)) for v in sample.values())


#: what the cost-aware strategies need besides a seed, on any space
COST_ARGS = {'constrained_evolution': {'cost': toy_cost, 'limit': 1e9},
             'mnasnet': {'cost': toy_cost, 'target': 5.0},
             'pareto_evolution': {'cost': toy_cost}}

#: the predictor-guided searchers with small models (fewer networks, epochs and generations): the
#: contract tests check what they propose, not how well they predict (their own tests do)
SMALL_MODELS = {'tapas': {'epochs': 5, 'population': 10, 'tournament': 3, 'generations': 3, 'children': 10},
                'pnas': {'num_models': 2, 'epochs': 20},
                'neural_predictor': {'num_models': 2, 'epochs': 20}}
