"""One-shot searches run by tests/oneshot/test_oneshot_ddp.py as a program, because Lightning's DDP runs
the program again in each further process. Every process saves its parameters (weights,
architecture parameters, controller) after every training step, so the test can compare them
across processes and with a one-process run.

    python tests/oneshot_ddp_script.py OUT DEVICES RUNS_JSON

RUNS_JSON is a list of searches, each ``{"name", "method", "space", "epochs", "limit",
"method_args", "evaluator_args"}``, run one after the other; each writes under OUT/<name>/.
With DEVICES > 1 the first search's Trainer starts the further processes (they run this
program with the same arguments and ``LOCAL_RANK`` set), and every later search of the list
runs in the same processes and process group (Lightning starts processes only where
``LOCAL_RANK`` is unset), so one pair of processes serves the whole list.

SPACE is a registered space, ``cellnet`` (tests/nni_style_spaces.py: no batch norm) or ``bnnet``
(a layer choice between two conv + batch-norm blocks). :func:`run` is one search, for a
one-process run inside the test's own process.
"""
import json
import os
import sys
from pathlib import Path

import torch

import pytorch_lightning as pl

from torch import nn

from nni.nas.nn.pytorch import LayerChoice, ModelSpace

from nni_nasext import registry
from nni_nasext.evaluators.classification import ImageClassification
from nni_nasext.strategies.oneshot import search


class RecordParameters(pl.Callback):
    def __init__(self, out: Path):
        self.out, self.states = out, []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.states.append(torch.cat([p.detach().flatten().double() for p in module.parameters()]).clone())

    def on_train_end(self, trainer, module):
        torch.save(torch.stack(self.states), self.out / f'parameters_rank{trainer.global_rank}.pt')


class BNNet(ModelSpace):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4))
        self.op = LayerChoice([nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)),
                               nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))], label='op')
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        return self.fc(self.op(self.stem(x)).mean((2, 3)))


def run(out: Path, devices: int, method: str, space: str, epochs: int, limit: int, method_args=None,
        evaluator_args=None) -> None:
    """One search; writes ``parameters_rank<r>.pt`` and ``result_rank<r>.json`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    if space == 'cellnet':   # no batch norm: one process and two can agree to float precision
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from nni_style_spaces import CellNet
        model_space = CellNet()
    elif space == 'bnnet':
        model_space = BNNet()
    else:
        model_space = registry.build('space', space)
    evaluator = ImageClassification('digits', max_epochs=int(epochs), batch_size=64, devices=int(devices),
                                    accelerator='cpu', limit_train_batches=int(limit), limit_val_batches=2,
                                    **(evaluator_args or {}))
    result = search(model_space, evaluator, method, callbacks=[RecordParameters(out)], verbose=False,
                    **(method_args or {}))
    rank = int(os.environ.get('LOCAL_RANK', '0'))
    (out / f'result_rank{rank}.json').write_text(json.dumps({'sample': result.sample, 'val': result.history['val']}))


def main():
    out, devices, runs = Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    for r in runs:
        run(out / r['name'], devices, r['method'], r['space'], r['epochs'], r['limit'], r.get('method_args'),
            r.get('evaluator_args'))


if __name__ == '__main__':
    main()
