"""ONNX export of the best architecture (nni_nasext/onnx_export.py): the trial program records the
model's input, ``export_best`` (``nasext export`` / ``nasext run``) writes ``best_model.onnx``
beside ``best_model.pt``, and onnxruntime computes what PyTorch computes."""
import json
import warnings

import pytest
import torch

from nni_nasext import onnx_export
from nni_nasext.nnictl_tools import export_best
from nni_nasext.onnx_export import OnnxExportWarning, export_onnx, rebuild_model, unsupported_ops
from nni_nasext.trial_code.run import main as trial

SAMPLE = {'0_1': 'nor_conv_3x3', '0_2': 'nor_conv_1x1', '1_2': 'skip_connect', '0_3': 'avg_pool_3x3',
          '1_3': 'nor_conv_3x3', '2_3': 'none'}


def _trial(folder, evaluator='classification', args=None):
    args = args if args is not None else {'dataset': 'digits', 'max_epochs': 1, 'limit_train_batches': 3}
    code = trial(['--space', 'quickstart', '--evaluator', evaluator, '--evaluator-args', json.dumps(args),
                  '--sample', json.dumps(SAMPLE), '--output-dir', str(folder)])
    assert code == 0
    return json.loads((folder / 'result.json').read_text())


class SVD(torch.nn.Module):
    """A network ONNX cannot express (singular values)."""

    def forward(self, x):
        return torch.linalg.svdvals(x.flatten(1).unsqueeze(0)).squeeze(0)


def test_onnxruntime_computes_what_pytorch_computes(tmp_path):
    ort = pytest.importorskip('onnxruntime')
    result = _trial(tmp_path / 'exp' / 'trials' / 't1')
    assert result['input'] == {'shape': [1, 8, 8], 'dtype': 'float32'}   # digits: 1 x 8 x 8
    best = export_best(tmp_path / 'exp', tmp_path / 'out')
    onnx_path = tmp_path / 'out' / 'best_model.onnx'
    assert best['onnx'] == str(onnx_path) and onnx_path.exists()
    model = rebuild_model(best, tmp_path / 'out' / 'best_model.pt').eval()
    from nni_nasext.evaluators import ImageClassification
    x, _ = next(iter(ImageClassification('digits').dataloaders()[1]))   # a batch of real images, 256 of them
    session = ort.InferenceSession(str(onnx_path), providers=['CPUExecutionProvider'])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    assert got.shape == want.shape == (len(x), 10)
    assert abs(got - want).max() <= 1e-5


def test_a_network_onnx_cannot_express_warns_naming_the_op_and_the_rest_is_exported(tmp_path, monkeypatch):
    _trial(tmp_path / 'exp' / 'trials' / 't1')
    monkeypatch.setattr(onnx_export, 'rebuild_model', lambda result, path: SVD())
    with pytest.warns(OnnxExportWarning, match=r'best_model.onnx not written: it does not support aten::\w*svd'):
        best = export_best(tmp_path / 'exp', tmp_path / 'out')
    assert best['onnx'] is None and not (tmp_path / 'out' / 'best_model.onnx').exists()
    for name in ('best_sample.json', 'best_model.pt', 'best_result.json'):
        assert (tmp_path / 'out' / name).exists()


def test_export_onnx_returns_none_and_leaves_no_file(tmp_path):
    with pytest.warns(OnnxExportWarning, match='svd'):
        assert export_onnx(SVD(), {'shape': [3, 4], 'dtype': 'float32'}, tmp_path / 'm.onnx') is None
    assert not (tmp_path / 'm.onnx').exists()


def test_unsupported_ops_are_read_from_both_exporters_messages():
    assert unsupported_ops("No ONNX function found for <OpOverload(op='aten._linalg_svd', overload='default')>. "
                           "call_function[target=torch.ops.aten._linalg_svd.default]") == ['aten::_linalg_svd']
    assert unsupported_ops("Exporting the operator 'aten::unique_dim' to ONNX opset version 17 is not supported") \
        == ['aten::unique_dim']
    assert unsupported_ops('no operator here') == []


def test_a_trial_that_never_calls_its_network_has_no_onnx(tmp_path):
    result = _trial(tmp_path / 'exp' / 'trials' / 't1', evaluator='params', args={})
    assert 'input' not in result   # ParameterCount never calls the model
    with warnings.catch_warnings():
        warnings.simplefilter('error', OnnxExportWarning)
        best = export_best(tmp_path / 'exp', tmp_path / 'out')
    assert best['onnx'] is None
