"""One registry of every part of the project: names users type -> the objects they mean.

Every entry has a *kind* -- ``space``, ``evaluator``, ``assessor``, or one of the four kinds of
methods: ``searcher`` (sample-based), ``oneshot`` (weight sharing), ``zero_shot`` (training-free),
``transfer`` -- and an NNI *face*, how a user runs it:

``tuner``
    an ask/tell :class:`~nni_nasext.searcher.Searcher`: an nnictl tuner (``extra['tuner']``, registered
    by ``nasext register``, classes made in :mod:`nni_nasext.adapters.tuner`) and
    ``SearcherStrategy(cls(...))`` under ``NasExperiment``;
``oneshot``
    a Lightning module over the supernet of any model space: ``OneShotStrategy(name)`` under
    ``NasExperiment``, ``python3 -m nni_nasext.trial_code.oneshot --method name`` under nnictl;
``trial``
    a whole search run as one NNI trial program (``extra['nni']`` says how);
``space`` / ``evaluator`` / ``assessor``
    a ``ModelSpace`` (``--space name``), an evaluator (``--evaluator name``), an nnictl assessor.

``nasext list``, ``nasext register``, the tuner and assessor classes, the one-shot method lookup
and the contract tests (every searcher on every space, every searcher's nnictl config) are all
generated from :data:`ENTRIES`. A new method is one module, one ``Entry`` line in the table of
its kind, and its tests.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Dict, Tuple

__all__ = ['ASSESSORS', 'ENTRIES', 'EVALUATORS', 'Entry', 'KINDS', 'METHOD_KINDS', 'ONESHOT', 'SPACES', 'STRATEGIES',
           'UnknownNameError', 'build', 'lookup', 'methods']

#: the four kinds of NAS methods, in the order ``nasext list`` shows them
METHOD_KINDS = ('searcher', 'oneshot', 'zero_shot', 'transfer')


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    target: str          # 'module:attribute'
    summary: str
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)
    kind: str = ''       # space | evaluator | assessor | searcher | oneshot | zero_shot | transfer
    face: str = ''       # tuner | oneshot | trial | space | evaluator | assessor

    def load(self) -> Callable:
        module, _, attr = self.target.partition(':')
        return getattr(importlib.import_module(module), attr)

    @property
    def paper(self) -> str:
        return self.extra.get('paper', '')

    def nni_face(self) -> str:
        """How a user runs it under NNI, in one line."""
        cls = self.target.rpartition(':')[2]
        if self.face == 'tuner':
            return f"nnictl tuner {self.extra['tuner']}; NasExperiment: SearcherStrategy({cls}(...))"
        if self.face == 'oneshot':
            return f"NasExperiment: OneShotStrategy({self.name!r}); nnictl: trial_code.oneshot --method {self.name}"
        if self.face == 'assessor':
            return f"nnictl assessor {self.extra['assessor']}"
        if self.face == 'evaluator':
            return f'--evaluator {self.name}'
        if self.face == 'space':
            return f'--space {self.name}'
        return self.extra['nni']


def _table(kind: str, face: str, *entries: Entry) -> Tuple[Entry, ...]:
    return tuple(dataclasses.replace(e, kind=kind, face=face) for e in entries)


_SPACES = _table('space', 'space',
    Entry('nasbench201', 'nni_nasext.search_spaces.nasbench201:NasBench201Space',
          'NAS-Bench-201 cell (6 edges x 5 ops) in the NB201 skeleton, N=5, C=16, 32x32 RGB',
          {'size': 5 ** 6, 'paper': 'Dong & Yang, ICLR 2020', 'benchmark': 'nasbench201'}),
    Entry('quickstart', 'nni_nasext.search_spaces.nasbench201:QuickstartSpace',
          'NB201 cell at N=1, C=8 on 1-channel 8x8 images (scikit-learn digits)',
          {'size': 5 ** 6, 'paper': 'Dong & Yang, ICLR 2020', 'benchmark': 'nasbench201'}),
    Entry('nasbench101', 'nni_nasext.search_spaces.nasbench101:NasBench101Space',
          'NAS-Bench-101 cell (<=7 vertices, <=9 edges, 3 ops) in the NB101 skeleton, 32x32 RGB',
          {'size': 423_624, 'paper': 'Ying et al., ICML 2019'}),  # distinct valid cells; encodings 2**21 * 3**5
    Entry('nasrl', 'nni_nasext.search_spaces.nasrl:NasRLSpace',
          'NAS-RL global CNN: 15 conv layers (filter h/w, filters, optional strides) with skip anchors',
          {'size_log10': 58.7, 'paper': 'Zoph & Le, ICLR 2017'}),  # 73.0 with strides=True
    Entry('metaqnn', 'nni_nasext.search_spaces.metaqnn:MetaQNNSpace',
          'MetaQNN layer sequences (conv/pool/FC/termination) under the transition rules, 32x32 RGB',
          {'size_log10': 23.4, 'paper': 'Baker et al., ICLR 2017'}),  # encodings 20**18; distinct networks fewer
    Entry('nasnet_cells', 'nni_nasext.search_spaces.cells:NASNetSpace',
          'NASNet cell space: B=5 blocks, 13 ops, add, loose ends + h_{i-1}; CIFAR N=6, F=32',
          {'size_log10': 33.71, 'paper': 'Zoph et al., CVPR 2018'}),
    Entry('darts_cells', 'nni_nasext.search_spaces.cells:DARTSSpace',
          'DARTS cell space: 4 nodes x 2 inputs, 8 ops (none included); CIFAR C=36, 20 cells',
          {'size_log10': 22.77, 'paper': 'Liu et al., ICLR 2019'}),
    Entry('enas_micro', 'nni_nasext.search_spaces.cells:ENASMicroSpace',
          'ENAS micro cell space: B=5, 5 ops, loose ends; CIFAR N=6, F=36',
          {'size_log10': 25.41, 'paper': 'Pham et al., ICML 2018'}),
    Entry('enas_macro', 'nni_nasext.search_spaces.enas_macro:EnasMacroSpace',
          'ENAS macro space: 12-layer chain, 6 ops, any-subset skips (summed), 2 factorized reductions; CIFAR width 36',
          {'size_log10': 29.21, 'paper': 'Pham et al., ICML 2018'}),  # 6**12 * 2**66 = 1.6e29
    Entry('amoebanet_cells', 'nni_nasext.search_spaces.cells:AmoebaNetSpace',
          'AmoebaNet cell space: B=5, 8 ops, loose ends; CIFAR N=6, F=36',
          {'size_log10': 29.49, 'paper': 'Real et al., AAAI 2019'}),
    Entry('pnas_cells', 'nni_nasext.search_spaces.cells:PNASSpace',
          'PNAS cell space: one cell (normal = reduction), B=5, 8 ops; CIFAR F=48, stages (3, 2, 2)',
          {'size_log10': 14.75, 'paper': 'Liu et al., ECCV 2018'}),
    Entry('proxylessnas', 'nni_nasext.search_spaces.mobile:ProxylessSpace',
          'ProxylessNAS (NNI hub): MobileNetV2 backbone, per block k3/5/7 x e3/6, depth 1-4 per stage (zero op), 224px',
          {'size_log10': 16.74, 'paper': 'Cai et al., ICLR 2019'}),  # distinct networks; encodings 10**19.35
    Entry('mnasnet', 'nni_nasext.search_spaces.mobile:MnasNetSpace',
          'MnasNet factorized space: 7 stages x (op, kernel, SE, layers, filter multiplier), 224px',
          {'size': 96 ** 2 * 144 ** 5, 'paper': 'Tan et al., CVPR 2019'}),
    Entry('ofa', 'nni_nasext.search_spaces.mobile:OFASpace',
          'Once-for-All: MobileNetV3 backbone, 5 stages depth 2-4, per block k3/5/7 x e3/4/6, resolution 160-224',
          {'size_log10': 20.04, 'paper': 'Cai et al., ICLR 2020'}),  # distinct networks; encodings 10**21.77
    Entry('efficientnet_scaling', 'nni_nasext.search_spaces.mobile:EfficientNetScalingSpace',
          'EfficientNet compound scaling of B0: alpha/beta/gamma grid at phi=1, alpha*beta^2*gamma^2 = 2 +- 0.1 at freeze',
          {'size': 21 * 11 * 11, 'paper': 'Tan & Le, ICML 2019'}),  # 109 feasible
    Entry('rnn_cells', 'nni_nasext.search_spaces.rnn_cells:RNNCellSpace',
          'ENAS/DARTS recurrent cell: 8 nodes x (input, activation of 4), highway nodes, mean output; char LM',
          {'size': 4 ** 8 * 40320, 'paper': 'Pham et al., ICML 2018; Liu et al., ICLR 2019'}),
    Entry('nasbench_macro', 'nni_nasext.search_spaces.nasbench_macro:NasBenchMacroSpace',
          'NAS-Bench-Macro: 8 layers x {identity, MBv2 k3 e3, MBv2 k5 e6}, 32x32 RGB CIFAR-10',
          {'size': 3 ** 8, 'paper': 'Su et al., CVPR 2021', 'benchmark': 'nasbench_macro'}),
    Entry('randwire', 'nni_nasext.search_spaces.randwire:RandWireSpace',
          'randomly wired networks: the sample is a graph generator (WS, ER, BA), its parameters and the seed; '
          '3 stages of N=32 nodes (ReLU-SepConv-BN), small regime C=78, 224px',
          {'size': (4 * 5 + 4 + 6) * 100, 'paper': 'Xie et al., ICCV 2019'}),  # distinct networks; encodings 144,000
    Entry('nas_bench_graph', 'nni_nasext.search_spaces.nas_bench_graph:NasBenchGraphSpace',
          'NAS-Bench-Graph GNN space: 4 nodes each reading one earlier node, 9 ops (gat, gcn, gin, cheb, sage, arma, '
          'graph, fc, skip; 5 on proteins); node classification',
          {'size': 24 * 9 ** 4, 'paper': 'Qin et al., NeurIPS 2022 Datasets and Benchmarks',
           'benchmark': 'nas_bench_graph'}),  # 26,206 distinct architectures
)

#: Sample-based searchers (strategies/searchers/): nnictl tuners, SearcherStrategy under NasExperiment.
_SEARCHERS = _table('searcher', 'tuner',
    Entry('random', 'nni_nasext.strategies.searchers.random_search:RandomSearch',
          'uniform random search (Li & Talwalkar 2019)', {'tuner': 'NasextRandom'}),
    Entry('regularized_evolution', 'nni_nasext.strategies.searchers.regularized_evolution:RegularizedEvolution',
          'aging evolution with tournament selection (Real et al. 2019)', {'tuner': 'NasextEvolution'}),
    Entry('reinforce', 'nni_nasext.strategies.searchers.reinforce:ReinforceController',
          'LSTM controller trained with REINFORCE (Zoph & Le 2017)', {'tuner': 'NasextReinforce'}),
    Entry('metaqnn', 'nni_nasext.strategies.searchers.metaqnn:MetaQNN',
          'Q-learning over the decisions, epsilon schedule, experience replay (Baker et al. 2017)',
          {'tuner': 'NasextMetaQNN'}),
    Entry('pnas', 'nni_nasext.strategies.searchers.pnas:PNAS',
          'progressive growth of blocks ranked by a learned predictor (Liu et al. 2018)', {'tuner': 'NasextPNAS'}),
    Entry('neural_predictor', 'nni_nasext.strategies.searchers.neural_predictor:NeuralPredictor',
          'MLP-ensemble accuracy predictor chooses what to train next (Wen et al. 2020)',
          {'tuner': 'NasextNeuralPredictor'}),
    Entry('neural_predictor_gcn', 'nni_nasext.strategies.searchers.neural_predictor:NeuralPredictorGCN',
          'graph-convolution accuracy predictor on the cell DAG (one-hot ops, adjacency and its transpose) chooses '
          'what to train next; NB201 and NB101 cells (Wen et al., ECCV 2020)',
          {'tuner': 'NasextNeuralPredictorGCN'}),
    Entry('tpe', 'nni_nasext.strategies.searchers.optuna_sampler:OptunaTPE',
          "tree-structured Parzen estimator (Bergstra et al. 2011): Optuna's TPESampler (Akiba et al., KDD 2019), "
          'repeats answered from the record; chosen over our own TPE by experiments/bench_tpe_decision.py',
          {'tuner': 'NasextTPE'}),
    Entry('optuna_cmaes', 'nni_nasext.strategies.searchers.optuna_sampler:OptunaCmaEs',
          "Optuna's CmaEsSampler (Hansen 2016): numerical decisions; categorical ones are drawn at random",
          {'tuner': 'NasextOptunaCmaEs'}),
    Entry('optuna_nsga2', 'nni_nasext.strategies.searchers.optuna_sampler:OptunaNSGAII',
          "Optuna's NSGAIISampler, a genetic algorithm with non-dominated sorting (Deb et al. 2002)",
          {'tuner': 'NasextOptunaNSGAII'}),
    Entry('optuna_gp', 'nni_nasext.strategies.searchers.optuna_sampler:OptunaGP',
          "Optuna's GPSampler: Bayesian optimisation with a Matern-5/2 Gaussian process and log EI",
          {'tuner': 'NasextOptunaGP', 'paper': 'Snoek, Larochelle & Adams, NeurIPS 2012; Akiba et al., KDD 2019'}),
    Entry('optuna_qmc', 'nni_nasext.strategies.searchers.optuna_sampler:OptunaQMC',
          "Optuna's QMCSampler: scrambled Sobol' points (numerical decisions; categorical ones at random)",
          {'tuner': 'NasextOptunaQMC', 'paper': 'Bergstra & Bengio, JMLR 2012 (low-discrepancy sequences)'}),
    Entry('optuna_random', 'nni_nasext.strategies.searchers.optuna_sampler:OptunaRandom',
          "Optuna's RandomSampler (the adapter's baseline)",
          {'tuner': 'NasextOptunaRandom', 'paper': 'Bergstra & Bengio, JMLR 2012'}),
    Entry('bohb', 'nni_nasext.strategies.searchers.bohb:BOHB',
          'Hyperband with configurations from a TPE-style density model (Falkner et al. 2018)',
          {'tuner': 'NasextBOHB'}),
    Entry('hyperband', 'nni_nasext.strategies.searchers.hyperband:Hyperband',
          'Hyperband over training budgets, e.g. epochs (Li et al. 2018)', {'tuner': 'NasextHyperband'}),
    Entry('successive_halving', 'nni_nasext.strategies.searchers.hyperband:SuccessiveHalving',
          'successive halving over training budgets (Jamieson & Talwalkar 2016)',
          {'tuner': 'NasextSuccessiveHalving'}),
    Entry('pdh', 'nni_nasext.strategies.searchers.pdh:ProgressiveDynamicHurdles',
          'Progressive Dynamic Hurdles: aging evolution where only children at or above a hurdle (the population\'s '
          'mean fitness) earn the next training budget (So, Liang & Le, ICML 2019)', {'tuner': 'NasextPDH'}),
    Entry('constrained_evolution', 'nni_nasext.strategies.searchers.multi_objective:ConstrainedEvolution',
          'regularized evolution under a hard cost budget (latency, FLOPs): samples over it are never trained '
          '(Real et al. 2019; the constraint as in Zen-NAS, Lin et al. 2021)',
          {'tuner': 'NasextConstrainedEvolution'}),
    Entry('mnasnet', 'nni_nasext.strategies.searchers.multi_objective:MnasNetEvolution',
          'regularized evolution on MnasNet\'s reward acc x (lat/T)^w, soft or hard (Tan et al. 2019)',
          {'tuner': 'NasextMnasNet'}),
    Entry('pareto_evolution', 'nni_nasext.strategies.searchers.multi_objective:ParetoEvolution',
          'NSGA-II-style Pareto evolution on accuracy and a cost (Deb et al. 2002; sorting by pymoo)',
          {'tuner': 'NasextParetoEvolution'}),
)

#: Zero-shot searches that ask and tell (strategies/zero_shot/).
_ZERO_SHOT_SEARCHERS = _table('zero_shot', 'tuner',
    Entry('zen_nas', 'nni_nasext.strategies.zero_shot.zen_nas:ZenNAS',
          'evolution keeping the best-scored networks under a params/FLOPs or device-latency budget (Zen-NAS, Lin et al. 2021)',
          {'tuner': 'NasextZenNAS'}),
    Entry('proxy_warm_start', 'nni_nasext.strategies.zero_shot.zen_nas:ProxyWarmStart',
          'score many samples with a zero-cost proxy, train the top few first, then another strategy (the warm '
          'start of Abdelfattah et al., ICLR 2021)',
          {'tuner': 'NasextProxyWarmStart'}),
)

#: Transfer searchers over the NB201 cell (strategies/transfer/).
_TRANSFER_SEARCHERS = _table('transfer', 'tuner',
    Entry('tapas', 'nni_nasext.strategies.transfer.tapas:TAPAS',
          'transfer NAS: LSTM accuracy predictor on NB201 source-dataset metadata + dataset character number, '
          'predictor-driven evolution (Istrate et al. 2019)', {'tuner': 'NasextTAPAS'}),
    Entry('transfer_gp', 'nni_nasext.strategies.transfer.transfer_gp:TransferGP',
          'transfer NAS: Bayesian optimisation on the target with a prior mean from NB201 source-dataset tables and '
          'a GP residual (XferNAS-style universal + residual, Wistuba 2020), settings chosen on the sources',
          {'tuner': 'NasextTransferGP'}),
    Entry('xfernas', 'nni_nasext.strategies.transfer.xfernas:XferNAS',
          'transfer NAS: NAO-style encoder-decoder with a universal + task-residual surrogate pre-trained on NB201 '
          'source-dataset metadata, latent gradient search, residual refitted on the target (Wistuba 2020)',
          {'tuner': 'NasextXferNAS'}),
    Entry('rapidnas', 'nni_nasext.strategies.transfer.rapidnas:RapidNAS',
          'transfer NAS: cells generated from a set encoding of the target and ranked by a dataset-aware predictor, '
          'meta-trained on NB201 source datasets (MetaD2A, Lee et al. 2021)', {'tuner': 'NasextRapidNAS'}),
)

_EVALUATORS = _table('evaluator', 'evaluator',
    Entry('classification', 'nni_nasext.evaluators.classification:ImageClassification',
          'train with PyTorch Lightning on an image dataset (digits, mnist10k, mnist, fashion-mnist, cifar10, cifar100)'),
    Entry('pretext', 'nni_nasext.evaluators.pretext:PretextTask',
          'UnNAS: train without labels on a pretext task (rotation, jigsaw, colorization) and score its accuracy '
          '(Liu et al., ECCV 2020); the space needs num_classes=num_outputs',
          {'paper': 'Liu, Dollár, He, Girshick, Yuille & Xie, ECCV 2020'}),
    Entry('nb201', 'nni_nasext.evaluators.nb201_lookup:NasBench201Lookup',
          'look up NAS-Bench-201 accuracy and simulated cost (12 or 200 epochs)'),
    Entry('zero_cost', 'nni_nasext.evaluators.proxies:ZeroCostProxy',
          'training-free proxy score (synflow, naswot, snip, grad_norm, jacob_cov, zen, te_nas_ntk, ...)'),
    Entry('combined_proxy', 'nni_nasext.evaluators.proxy_combination:CombinedProxy',
          'learned combination of zero-cost proxies (ridge on standardised scores, fitted on NB201)'),
    Entry('params', 'nni_nasext.evaluators.params:ParameterCount',
          'trainable parameters in millions (no training): the zero-cost baseline, and a quick end-to-end check'),
    Entry('language_model', 'nni_nasext.evaluators.language_model:LanguageModel',
          'train a character-level LM with Lightning (tinyshakespeare); reports validation perplexity (minimize)'),
    Entry('nasbench_macro', 'nni_nasext.evaluators.macro_lookup:NasBenchMacroLookup',
          'look up NAS-Bench-Macro CIFAR-10 test accuracy (mean of 3 runs or one seed); cost = 1 per query'),
    Entry('nas_bench_graph', 'nni_nasext.evaluators.nas_bench_graph_lookup:NasBenchGraphLookup',
          'look up NAS-Bench-Graph validation (reward) and test accuracy, latency, params on 9 graph datasets; '
          'cost = 1 per query (Qin et al., NeurIPS 2022 D&B)'),
)

_ASSESSORS = _table('assessor', 'assessor',
    Entry('median_stop', 'nni_nasext.assessors:MedianStop',
          'stop a trial below the median of completed trials at the same step (Golovin et al. 2017)',
          {'assessor': 'NasextMedianStop'}),
    Entry('curve_extrapolation', 'nni_nasext.assessors:CurveExtrapolation',
          'stop a trial unlikely to beat the best, by learning-curve extrapolation (Domhan et al. 2015)',
          {'assessor': 'NasextCurveExtrapolation'}),
    Entry('lcranknet', 'nni_nasext.assessors.lcranknet:LCRankNetAssessor',
          'stop a trial ranked below the best by LCRankNet, learned across tasks (Wistuba & Pedapati 2020)',
          {'assessor': 'NasextLCRankNet'}),
)

_OS = 'nni_nasext.strategies.oneshot'
#: One-shot (weight-sharing) methods: Lightning modules over the generic supernet of any
#: ModelSpace (:mod:`nni_nasext.strategies.oneshot`); NNI face: ``OneShotStrategy(name)`` under
#: NasExperiment, ``python3 -m nni_nasext.trial_code.oneshot --method name`` under nnictl.
_ONESHOT = _table('oneshot', 'oneshot',
    Entry('darts', f'{_OS}.darts:DARTS', 'soft mix softmax(alpha), first-order bilevel step',
          {'paper': 'Liu, Simonyan & Yang, ICLR 2019'}),
    Entry('darts2', f'{_OS}.darts:SecondOrderDARTS', 'DARTS with the second-order (unrolled) architecture gradient',
          {'paper': 'Liu, Simonyan & Yang, ICLR 2019'}),
    Entry('gdas', f'{_OS}.darts:GDAS', 'one Gumbel-sampled candidate per decision, straight-through gradient',
          {'paper': 'Dong & Yang, CVPR 2019'}),
    Entry('snas', f'{_OS}.darts:SNAS', 'relaxed Gumbel-softmax sample of every decision, annealed temperature',
          {'paper': 'Xie et al., ICLR 2019'}),
    Entry('pcdarts', f'{_OS}.darts:PCDARTS', 'DARTS on 1/K of the channels with edge normalisation',
          {'paper': 'Xu et al., ICLR 2020'}),
    Entry('fairdarts', f'{_OS}.darts:FairDARTS', 'sigmoid weights (no competition) and a zero-one loss',
          {'paper': 'Chu et al., ECCV 2020'}),
    Entry('proxyless', f'{_OS}.proxyless:ProxylessNAS', 'two sampled paths under binary gates; expected-latency loss',
          {'paper': 'Cai, Zhu & Han, ICLR 2019'}),
    Entry('enas', f'{_OS}.enas:ENAS', 'LSTM controller trained by REINFORCE on the shared weights',
          {'paper': 'Pham et al., ICML 2018'}),
    Entry('rsps', f'{_OS}.single_path:RSPS', 'uniform single-path training, then random search scored by the supernet',
          {'paper': 'Li & Talwalkar, UAI 2019'}),
    Entry('spos', f'{_OS}.single_path:SPOS', 'uniform single-path training, then evolution scored by the supernet',
          {'paper': 'Guo et al., ECCV 2020'}),
    Entry('bender', f'{_OS}.single_path:Bender', 'path dropout with a rising rate, then random search on the one-shot model',
          {'paper': 'Bender et al., ICML 2018'}),
    Entry('rdarts', f'{_OS}.remedies:RobustDARTS', 'DARTS with early stopping on the Hessian eigenvalue (DARTS-ES)',
          {'paper': 'Zela et al., ICLR 2020'}),
    Entry('darts_plus', f'{_OS}.remedies:DARTSPlus', 'DARTS stopped on too many skips or a stable ranking',
          {'paper': 'Liang et al., arXiv 1909.06035, 2019'}),
    Entry('pdarts', f'{_OS}.remedies:PDARTS', 'DARTS with decaying dropout on skips and at most M skips derived',
          {'paper': 'Chen et al., ICCV 2019'}),
    Entry('asap', f'{_OS}.remedies:ASAP', 'annealed softmax and pruning of weak candidates during the search',
          {'paper': 'Noy et al., AISTATS 2020'}),
    Entry('darts_pt', f'{_OS}.remedies:DARTSPT', 'DARTS, then perturbation-based selection of every decision',
          {'paper': 'Wang et al., ICLR 2021'}),
    Entry('darts_pt_fixed', f'{_OS}.remedies:DARTSPTFixed', 'supernet trained with uniform, frozen alpha, then perturbation-based selection',
          {'paper': 'Wang et al., ICLR 2021'}),
)

#: TE-NAS prunes the supernet without training: zero-shot, with the one-shot face.
_ZERO_SHOT_ONESHOT = _table('zero_shot', 'oneshot',
    Entry('te_nas', 'nni_nasext.strategies.zero_shot.te_nas:TENAS', 'training-free pruning by NTK condition number and linear regions',
          {'paper': 'Chen, Gong & Wang, ICLR 2021'}),
)

#: Methods whose whole search is one NNI trial program or their own strategy class.
_RUNS = _table('oneshot', 'trial',
    Entry('ofa', 'nni_nasext.strategies.oneshot.ofa:OFAModule',
          'Once-for-All: progressive shrinking of an elastic MobileNetV3 supernet (kernel, depth, expansion), then '
          'a constrained search of sub-networks without retraining (OFA space)',
          {'paper': 'Cai, Gan, Wang, Zhang & Han, ICLR 2020',
           'nni': 'NasExperiment: OFAStrategy(...) on OFASpace; nnictl: python3 -m nni_nasext.trial_code.ofa'}),
) + _table('transfer', 'trial',
    Entry('tnas', 'nni_nasext.strategies.transfer.tnas:TNAS',
          'T-NAS: MAML over the weights and the architecture alpha of an NB201 supernet on few-shot episodes; the '
          'derived cell adapts to a new task in a few steps (MAML is the baseline)',
          {'paper': 'Lian et al., ICLR 2020',
           'nni': 'nnictl: python3 -m nni_nasext.trial_code.tnas (one trial meta-trains and meta-tests)'}),
)

#: every entry of the project, in the order ``nasext list`` shows them within a kind
ENTRIES: Tuple[Entry, ...] = (_SPACES + _SEARCHERS + _ZERO_SHOT_SEARCHERS + _TRANSFER_SEARCHERS + _ONESHOT
                              + _ZERO_SHOT_ONESHOT + _RUNS + _EVALUATORS + _ASSESSORS)


def _view(keep) -> Dict[str, Entry]:
    out: Dict[str, Entry] = {}
    for e in ENTRIES:
        if keep(e):
            if e.name in out:
                raise RuntimeError(f'registry: {e.name!r} twice in one view')  # pragma: no cover
            out[e.name] = e
    return out


SPACES = _view(lambda e: e.kind == 'space')
EVALUATORS = _view(lambda e: e.kind == 'evaluator')
ASSESSORS = _view(lambda e: e.kind == 'assessor')
#: every ask/tell method (any kind): the nnictl tuners and SearcherStrategy
STRATEGIES = _view(lambda e: e.face == 'tuner')
#: every method with the one-shot face: OneShotStrategy(name), trial_code.oneshot --method name
ONESHOT = _view(lambda e: e.face == 'oneshot')

KINDS = {'space': SPACES, 'strategy': STRATEGIES, 'evaluator': EVALUATORS, 'assessor': ASSESSORS, 'oneshot': ONESHOT}


def methods(kind: str) -> Dict[str, Entry]:
    """The methods of one kind (``searcher``, ``oneshot``, ``zero_shot``, ``transfer``), every face."""
    if kind not in METHOD_KINDS:
        raise ValueError(f'Unknown kind of method {kind!r}; known: {", ".join(METHOD_KINDS)}')
    return {e.name: e for e in ENTRIES if e.kind == kind}


class UnknownNameError(KeyError):
    def __str__(self) -> str:  # KeyError would quote the whole message
        return self.args[0]


def lookup(kind: str, name: str) -> Entry:
    table = KINDS[kind]
    key = name.strip().lower().replace('-', '_')
    if key not in table:
        raise UnknownNameError(f'Unknown {kind} {name!r}. Known {kind} names: {", ".join(sorted(table))}')
    return table[key]


def build(kind: str, name: str, **kwargs) -> Any:
    """Instantiate a registered part with keyword arguments; bad arguments name the part."""
    entry = lookup(kind, name)
    factory = entry.load()
    try:
        return factory(**kwargs)
    except TypeError as err:
        raise TypeError(f'Bad arguments for {kind} {name!r} ({entry.target}): {err}') from None
