"""nni-nasext inside an existing NNI project: ``NasExperiment`` with our parts.

Runs, one after the other, on our quickstart space (NB201 cell, N=1, C=8) trained with our
Lightning evaluator on scikit-learn's digits:

1. ``NasExperiment(space, evaluator, SearcherStrategy(RegularizedEvolution(...)))``: our
   strategy, space and evaluator;
2. the same space and evaluator under NNI's own ``RegularizedEvolution`` and ``Random``.

and, if the NB201 tables are reachable (``NASEXT_DATA``), 3. our strategy on the full
NB201 space with the NB201 lookup evaluator. Each prints its best architecture; the first
exports it (sample JSON + PyTorch state dict) under ``exports/demo/``.

    python experiments/nas_experiment_demo.py [--trials 6] [--epochs 2]

NNI's sequential execution engine runs the models in this process (NNI's default engine
would start the NNI manager and web UI; use ``nasext quickstart`` for the web UI).
"""
from __future__ import annotations

import argparse
import atexit
import json
import logging
import time
import warnings
from pathlib import Path

import torch

warnings.filterwarnings('ignore')
import nni.nas.strategy as nni_strategy  # noqa: E402
from nni.nas.experiment import NasExperiment, NasExperimentConfig  # noqa: E402
from nni.nas.experiment.config.engine import SequentialEngineConfig  # noqa: E402

from nni_nasext.adapters import SearcherStrategy  # noqa: E402
from nni_nasext.evaluators import ImageClassification, NasBench201Lookup  # noqa: E402
from nni_nasext.search_spaces import NasBench201Space, QuickstartSpace  # noqa: E402
from nni_nasext.strategies import RegularizedEvolution  # noqa: E402


def run(space, evaluator, strategy, trials: int, workdir: Path):
    # a model that fails (NaN loss, crash) is recorded as failed and the search goes on
    config = NasExperimentConfig(SequentialEngineConfig(continue_on_failure=True), 'raw', max_trial_number=trials,
                                 experiment_working_directory=str(workdir))
    exp = NasExperiment(space, evaluator, strategy, config)
    start = time.time()
    exp.run()
    atexit.unregister(exp.stop)
    best = exp.export_top_models(formatter='dict')[0]
    scores = [m.metric for m in exp._engine.list_models() if m.metric is not None]
    print(f'  {strategy!r}: {len(scores)} models in {time.time() - start:.0f}s, best {max(scores):.4f}: {best}')
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--trials', type=int, default=6)
    p.add_argument('--epochs', type=int, default=2)
    p.add_argument('--workdir', default='nni-experiments')
    args = p.parse_args()
    logging.getLogger('nni').setLevel(logging.WARNING)
    workdir = Path(args.workdir)

    print('1. our strategy, space and evaluator')
    evaluator = ImageClassification('digits', max_epochs=args.epochs)
    best = run(QuickstartSpace(), evaluator,
               SearcherStrategy(RegularizedEvolution(population_size=3, sample_size=2, seed=0)), args.trials, workdir)
    out = Path('exports/demo')
    out.mkdir(parents=True, exist_ok=True)
    (out / 'best_sample.json').write_text(json.dumps(best, indent=1))
    model = QuickstartSpace().freeze(best)
    evaluator.evaluate(model)  # retrain the winner to export trained weights
    torch.save(model.state_dict(), out / 'best_model.pt')
    print(f'  exported to {out}/best_sample.json and best_model.pt')

    print("2. NNI's own strategies on our space and evaluator")
    for strategy in (nni_strategy.RegularizedEvolution(population_size=3, sample_size=2, seed=0),
                     nni_strategy.Random(seed=0)):
        run(QuickstartSpace(), ImageClassification('digits', max_epochs=args.epochs), strategy, args.trials, workdir)

    print('3. our strategy on NAS-Bench-201 (12-epoch lookup, cifar10-valid)')
    try:
        run(NasBench201Space(), NasBench201Lookup('cifar10-valid', 12),
            SearcherStrategy(RegularizedEvolution.nb201_preset(seed=0)), 100, workdir)
    except FileNotFoundError as err:
        print(f'  skipped: {err}')


if __name__ == '__main__':
    main()
