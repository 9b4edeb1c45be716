"""Small model spaces that mirror the ones NNI 3.0's one-shot tests search
(``test/ut/nas/nn/models.py``: a plain LayerChoice/InputChoice net, value choices in mutable
layers, ``Repeat``, a ``Repeat`` of ``Cell`` with an op factory and loose ends, multi-head
attention, a custom module with a choice among its arguments), written small (8x8 one-channel
images, a few channels) so that a one-shot search of each takes a second.

``SPACES`` maps a name to ``(factory, data)``: ``data`` is ``'image'`` (1x8x8 images, 10 classes),
``'attention'`` (a (q, k, v) triple of 1x16 sequences -> one regression target) or ``'pair'``
(two 16-vectors in, a vector out). ``expect_unsupported`` names the spaces no weight-sharing
method can search (NNI's test expects a ``TypeError`` matching 'not supported' for them).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import nni
from nni.nas.nn.pytorch import (Cell, InputChoice, LayerChoice, ModelSpace, MutableBatchNorm2d, MutableConv2d,
                                MutableLinear, MutableMultiheadAttention, ParametrizedModule, Repeat)


class SepConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin)
        self.pointwise = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class SimpleNet(ModelSpace):
    """LayerChoice over convs and dropouts, a hidden width choice, an InputChoice."""

    def __init__(self, value_choice: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = LayerChoice([nn.Conv2d(4, 8, 3, padding=1), SepConv(4, 8)], label='conv')
        self.pool = nn.MaxPool2d(2)
        self.dropout1 = LayerChoice([nn.Dropout(.25), nn.Dropout(.5), nn.Dropout(.75)], label='dropout')
        hidden = nni.choice('hidden', [8, 16, 24]) if value_choice else 16
        self.fc1 = MutableLinear(8 * 4 * 4, hidden)
        self.fc2 = MutableLinear(hidden, 10)
        self.rpfc = nn.Linear(10, 10)
        self.input_ch = InputChoice(2, 1, label='input')

    def forward(self, x):
        x = self.pool(self.conv2(F.relu(self.conv1(x))))
        x = torch.flatten(self.dropout1(x), 1)
        x = self.fc2(F.relu(self.fc1(x)))
        return self.input_ch([x, self.rpfc(x)])


class ValueChoiceConvNet(ModelSpace):
    """Channels and kernel size as choices of MutableConv2d / MutableBatchNorm2d."""

    def __init__(self):
        super().__init__()
        ch1 = nni.choice('ch1', [4, 8])
        kernel = nni.choice('kernel', [3, 5])
        self.conv1 = MutableConv2d(1, ch1, kernel, padding=kernel // 2)
        self.batch_norm = MutableBatchNorm2d(ch1)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = MutableConv2d(ch1, 8, 3)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = F.relu(self.batch_norm(self.conv1(x)))
        x = self.pool(self.conv2(x))
        return self.fc(torch.mean(x, (2, 3)))


class RepeatNet(ModelSpace):
    """Value choices, then a Repeat of 1 to 4 linear blocks."""

    def __init__(self):
        super().__init__()
        ch1 = nni.choice('ch1', [4, 8])
        kernel = nni.choice('kernel', [3, 5])
        self.conv1 = MutableConv2d(1, ch1, kernel, padding=kernel // 2)
        self.batch_norm = MutableBatchNorm2d(ch1)
        self.conv2 = MutableConv2d(ch1, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)
        self.rpfc = Repeat(nn.Linear(10, 10), (1, 4), label='rep')

    def forward(self, x):
        x = F.relu(self.batch_norm(self.conv1(x)))
        x = F.max_pool2d(self.conv2(x), 2)
        return self.rpfc(self.fc(torch.mean(x, (2, 3))))


class CellNet(ModelSpace):
    """A Repeat (depth 1-3) of Cells whose ops come from a factory that depends on the input."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 5, 3, stride=2, padding=1)

        def cell(index):
            def width(inp):
                return (5 if index == 0 else 3 * 4) if inp is not None and inp < 1 else 4
            return Cell({
                'conv1': lambda _, __, inp: nn.Conv2d(width(inp), 4, 1),
                'conv3': lambda _, __, inp: nn.Conv2d(width(inp), 4, 3, padding=1),
            }, 3, merge_op='loose_end', label=f'cell{index}')

        self.cells = Repeat(cell, (1, 3), label='rep')
        self.fc = nn.Linear(3 * 4, 10)

    def forward(self, x):
        x = self.cells(self.stem(x))
        return self.fc(torch.mean(x, (2, 3)))


class MultiHeadAttentionNet(ModelSpace):
    def __init__(self, heads: int = 1):
        super().__init__()
        embed_dim = nni.choice('embed_dim', [8, 16])
        self.linear1 = MutableLinear(16, embed_dim)
        self.mhatt = MutableMultiheadAttention(embed_dim, heads)
        self.linear2 = MutableLinear(embed_dim, 1)

    def forward(self, batch):
        query, key, value = batch
        q, k, v = self.linear1(query), self.linear1(key), self.linear1(value)
        out, _ = self.mhatt(q, k, v, need_weights=False)
        return F.relu(self.linear2(out))


class MyOp(ParametrizedModule):
    """A custom module with a choice among its arguments: no supernet can mix it."""

    def __init__(self, some_ch):
        super().__init__()
        self.some_ch = some_ch
        self.batch_norm = nn.BatchNorm2d(some_ch)

    def forward(self, x):
        return self.batch_norm(x)


class CustomOpNet(ModelSpace):
    def __init__(self):
        super().__init__()
        ch1 = nni.choice('ch1', [4, 8])
        self.conv1 = MutableConv2d(1, ch1, 3, padding=1)
        self.batch_norm = MyOp(ch1)
        self.dropout1 = LayerChoice([nn.Dropout(.25), nn.Dropout(.5)], label='dropout')
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(self.dropout1(torch.mean(self.batch_norm(self.conv1(x)), (2, 3))))


class CellSimple(ModelSpace, label_prefix='model'):
    """A plain Cell on vectors (two predecessors, two ops per node, all nodes merged)."""

    def __init__(self):
        super().__init__()
        self.cell = Cell([nn.Linear(16, 16), nn.Linear(16, 16, bias=False)],
                         num_nodes=4, num_ops_per_node=2, num_predecessors=2, merge_op='all')
        self.head = nn.Linear(4 * 16, 10)

    def forward(self, batch):
        x, y = batch
        return self.head(self.cell(x, y))


SPACES = {
    'simple': (lambda: SimpleNet(False), 'image'),
    'simple_value_choice': (SimpleNet, 'image'),
    'value_choice': (ValueChoiceConvNet, 'image'),
    'repeat': (RepeatNet, 'image'),
    'cell': (CellNet, 'image'),
    'multihead_attention': (MultiHeadAttentionNet, 'attention'),
    'cell_simple': (CellSimple, 'pair'),
    'custom_op': (CustomOpNet, 'image'),
}
expect_unsupported = {'custom_op'}


def image_batch(n: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def example_input(data: str, n: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    if data == 'image':
        return torch.randn(n, 1, 8, 8, generator=g)
    if data == 'attention':
        return tuple(torch.rand(1, n, 16, generator=g) for _ in range(3))
    return (torch.randn(n, 16, generator=g), torch.randn(n, 16, generator=g))
