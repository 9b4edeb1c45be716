"""Hardware costs of an architecture, known before training: the cost models of the hardware-aware
searchers.

* :mod:`.latency` -- :func:`~.latency.cost_model` by name (``nb201_latency:<device>`` tables of
  27 devices, ``flops``, ``params``, ``predictor:<file>``, ...) and the NAS-Bench-201 latency
  tables;
* :mod:`.latency_predictor` -- a latency predictor for any space, trained on measured latencies.
"""
