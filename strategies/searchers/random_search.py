"""Random search: every sample drawn uniformly from the space.

The baseline of the NAS literature that good strategies must beat (Li & Talwalkar,
"Random Search and Reproducibility for Neural Architecture Search", UAI 2019; the RS row of
the NAS-Bench-201 paper). With ``dedup=True`` a sample already asked is drawn again (up to
``max_retries`` times), so small spaces are not revisited.
"""
from __future__ import annotations

from typing import Optional

from nni_nasext.searcher import Searcher


class RandomSearch(Searcher):
    def __init__(self, *, dedup: bool = True, max_retries: int = 100, seed: Optional[int] = None):
        super().__init__(seed=seed)
        self.dedup, self.max_retries = dedup, max_retries
        self._seen = set()

    def _ask(self):
        for _ in range(self.max_retries if self.dedup else 1):
            sample = self.space.random(self.rng)
            if not self.dedup or self.space.key(sample) not in self._seen:
                break
        self._seen.add(self.space.key(sample))
        return sample

    def state_dict(self):
        return {**super().state_dict(), 'seen': sorted(self._seen)}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self._seen = set(state.get('seen', ()))
