"""The program ``nnictl`` runs for one trial (``python3 -m nni_nasext.trial_code ...``).

sample (``nni.get_next_parameter()``) -> model (the named space, frozen) -> the named
evaluator -> ``nni.report_intermediate_result`` / ``nni.report_final_result``. The trial also
writes ``sample.json``, ``result.json`` and (for trained models) ``model.pt`` into its NNI
output directory, from which ``nasext export`` takes the best architecture.
"""
