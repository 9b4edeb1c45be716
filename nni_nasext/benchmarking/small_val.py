"""An evaluator the one-shot benchmarks share (enas_spaces, proxyless_latency)."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Subset

from nni_nasext.evaluators.classification import ImageClassification


class SmallValClassification(ImageClassification):
    """:class:`ImageClassification` with the validation set cut to ``val_limit`` images, drawn with
    the evaluator's seed (``limit`` only cuts the training set; Fashion-MNIST's 12,000 validation
    images would dominate a small search)."""

    def __init__(self, *args, val_limit=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.val_limit = val_limit

    def dataloaders(self):
        fresh = self._loaders is None
        train, val = super().dataloaders()
        if fresh and self.val_limit and len(val.dataset) > self.val_limit:
            idx = torch.randperm(len(val.dataset), generator=torch.Generator().manual_seed(self.seed))[:self.val_limit]
            val = DataLoader(Subset(val.dataset, sorted(idx.tolist())), batch_size=val.batch_size, shuffle=False)
            self._loaders = (train, val)
        return self._loaders
