"""Running our trial program (``nni_nasext.trial_code``) outside nnictl in the tests of the lookup
trials: the fast path (no torch) against the general one, on the same sample."""
import ast
import json
import os
import re
import subprocess
import sys

#: prints, after the trial, which heavy modules it imported
_CODE = ('import sys; sys.argv = ["x"] + sys.argv[1:]; from nni_nasext.trial_code.run import main; rc = main(); '
         'print("TORCH", "torch" in sys.modules, "LIGHTNING", "pytorch_lightning" in sys.modules, '
         '"NNI_NAS", "nni.nas" in sys.modules); sys.exit(rc)')


def run_trial_program(out, space, evaluator, sample, fast, evaluator_args='{}', space_args='{}', env=None):
    """``(completed process, result.json as a dict or None)``; ``fast=False`` sets NASEXT_NO_FAST_LOOKUP
    (the general path: space built, evaluator from NNI's benchmark module)."""
    env = dict(os.environ if env is None else env)
    env.pop('NASEXT_NO_FAST_LOOKUP', None)
    if not fast:
        env['NASEXT_NO_FAST_LOOKUP'] = '1'
    proc = subprocess.run([sys.executable, '-c', _CODE, '--space', space, '--space-args', space_args,
                           '--evaluator', evaluator, '--evaluator-args', evaluator_args, '--sample', json.dumps(sample),
                           '--output-dir', str(out)], env=env, capture_output=True, text=True, timeout=300)
    result = out / 'result.json'
    return proc, (json.loads(result.read_text()) if result.exists() else None)


def imported_no_torch(proc) -> bool:
    return 'TORCH False LIGHTNING False NNI_NAS False' in proc.stdout


def final_result(proc) -> dict:
    """The final result the trial reported to NNI (its log line; coloured on the general path)."""
    return ast.literal_eval(re.search(r'Final result: (\{[^}]*\})', proc.stdout + proc.stderr).group(1))
