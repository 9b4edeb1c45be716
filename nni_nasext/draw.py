"""Draw searched cells as pictures (PNG), with matplotlib only (no graphviz).

Every function takes a sample (the ``dict`` label -> value of the space), a path, and an
optional ``title``; it writes one PNG and returns the number of edges it drew with an
operation label (for :func:`draw_nasbench101`, whose operations sit on the vertices, the
number of edges; for :func:`draw_chain` / :func:`draw_macro`, the number of layers).

* :func:`draw_nb201`       NAS-Bench-201 cell (nodes 0..3, edge ``i_j`` -> operation);
* :func:`draw_darts_like`  a NASNet-family cell of ``search_spaces/cells.py`` (DARTS, NASNet,
  ENAS, AmoebaNet, PNAS; ``normal`` or ``reduce``);
* :func:`draw_rnn`         a recurrent cell of ``search_spaces/rnn_cells.py``;
* :func:`draw_nasbench101` a NAS-Bench-101 cell (``op1..op5``, ``edge_i_j``);
* :func:`draw_chain`       a layer-wise sample (one box per layer); :func:`draw_macro` is it
  for NAS-Bench-Macro;
* :func:`draw_dag`         the renderer under them all: any DAG of labelled boxes and arrows.

Layout: nodes in layers by longest path from the sources (left to right), ordered inside a
layer by a few barycentre sweeps; arrows curve around boxes they would cross, and each edge
label goes where it hits no box and no other label (a small deterministic search over
curvatures and label positions). One data unit is one inch, so the figure is sized to its
content. The output is deterministic (no randomness, no date in the PNG metadata).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402
from matplotlib.textpath import TextPath  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402

__all__ = ['Node', 'Edge', 'draw_dag', 'draw_nb201', 'draw_darts_like', 'draw_rnn', 'draw_nasbench101',
           'draw_chain', 'draw_macro', 'NODE_FONTSIZE', 'EDGE_FONTSIZE']

NODE_FONTSIZE = 11
EDGE_FONTSIZE = 9
TITLE_FONTSIZE = 12
DPI = 150

#: fill colour of a node by kind
NODE_COLORS = {'input': '#b7e1a1', 'node': '#cfe2f3', 'output': '#ffe599', 'skip': '#eeeeee'}
#: colours given to operations in order of first appearance (sorted names, so deterministic)
PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf',
           '#bcbd22', '#7f7f7f', '#393b79', '#637939', '#843c39']
PLAIN_EDGE = '#555555'
NONE_EDGE = '#aaaaaa'
PathLike = Union[str, Path]


@dataclass
class Node:
    id: Any
    label: str
    kind: str = 'node'   # 'input' | 'node' | 'output' | 'skip'


@dataclass
class Edge:
    src: Any
    dst: Any
    label: str = ''      # operation; '' draws a plain grey arrow
    dashed: bool = False
    color: Optional[str] = None
    meta: Dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- text metrics

_FONT = FontProperties(family='DejaVu Sans')


def _text_size(text: str, size: float) -> Tuple[float, float]:
    """Width and height in inches of (possibly multi-line, possibly mathtext) ``text``."""
    lines = text.split('\n') or ['']
    width = 0.0
    for line in lines:
        if line:
            ext = TextPath((0, 0), line, size=size, prop=_FONT).get_extents()
            width = max(width, ext.width / 72.0)
    return width, len(lines) * size * 1.25 / 72.0


# ----------------------------------------------------------------------------- layout

def _layers(nodes: Sequence[Node], edges: Sequence[Edge]) -> Dict[Any, int]:
    ids = [n.id for n in nodes]
    preds: Dict[Any, List[Any]] = {i: [] for i in ids}
    for e in edges:
        preds[e.dst].append(e.src)
    layer: Dict[Any, int] = {}

    def visit(v, stack=()):
        if v in layer:
            return layer[v]
        if v in stack:
            raise ValueError(f'The graph has a cycle through {v!r}')
        layer[v] = 1 + max((visit(p, stack + (v,)) for p in preds[v]), default=-1)
        return layer[v]

    for v in ids:
        visit(v)
    return layer


def _order(nodes: Sequence[Node], edges: Sequence[Edge], layer: Dict[Any, int]) -> List[List[Any]]:
    """Nodes per layer, ordered by barycentre sweeps (ties: input order)."""
    nlayers = max(layer.values()) + 1
    rank = {n.id: k for k, n in enumerate(nodes)}
    cols: List[List[Any]] = [[n.id for n in nodes if layer[n.id] == L] for L in range(nlayers)]
    nbrs: Dict[Any, List[Any]] = {n.id: [] for n in nodes}
    for e in edges:
        nbrs[e.dst].append(e.src)
        nbrs[e.src].append(e.dst)

    def pos():
        return {v: (i - (len(c) - 1) / 2) for c in cols for i, v in enumerate(c)}

    for sweep in range(4):
        p = pos()
        rng = range(1, nlayers) if sweep % 2 == 0 else range(nlayers - 2, -1, -1)
        for L in rng:
            def key(v):
                ys = [p[u] for u in nbrs[v] if layer[u] != L]
                return (sum(ys) / len(ys) if ys else p[v], rank[v])
            cols[L] = sorted(cols[L], key=key)
            p = pos()
    return cols


def _bezier(p1, c, p2, t):
    a, b, d = (1 - t) ** 2, 2 * t * (1 - t), t ** 2
    return a * p1[0] + b * c[0] + d * p2[0], a * p1[1] + b * c[1] + d * p2[1]


def _inside(pt, box, pad=0.0):
    (x, y), (cx, cy, w, h) = pt, box
    return abs(x - cx) <= w / 2 + pad and abs(y - cy) <= h / 2 + pad


def _overlap(a, b, pad=0.03):
    return abs(a[0] - b[0]) < (a[2] + b[2]) / 2 + pad and abs(a[1] - b[1]) < (a[3] + b[3]) / 2 + pad


def draw_dag(nodes: Sequence[Node], edges: Sequence[Edge], path: PathLike, title: Optional[str] = None,
             legend: Optional[str] = None) -> int:
    """Draw a DAG left to right and save it as a PNG at ``path``; returns the number of edges
    drawn with a label. ``legend`` is an optional small note under the drawing."""
    ids = [n.id for n in nodes]
    if len(set(ids)) != len(ids):
        raise ValueError('Node ids must be unique')
    known = set(ids)
    for e in edges:
        if e.src not in known or e.dst not in known:
            raise ValueError(f'Edge {e.src!r} -> {e.dst!r} names an unknown node')
    layer = _layers(nodes, edges)
    cols = _order(nodes, edges, layer)
    by_id = {n.id: n for n in nodes}

    # node sizes (inches)
    size = {}
    for n in nodes:
        w, h = _text_size(n.label, NODE_FONTSIZE)
        size[n.id] = (max(w + 0.3, 0.55), h + 0.22)
    lab_size = {}
    for k, e in enumerate(edges):
        if e.label:
            w, h = _text_size(e.label, EDGE_FONTSIZE)
            lab_size[k] = (w + 0.08, h + 0.02)
    max_lab = max((w for w, _ in lab_size.values()), default=0.0)
    col_w = [max(size[v][0] for v in c) for c in cols]
    # a gap between two columns widens with the number of labels that start in it
    per_gap = [0] * len(cols)
    for k in lab_size:
        per_gap[layer[edges[k].src]] += 1
    base_gap = max(0.7, max_lab + 0.35)
    gaps = [base_gap * min(2.0, 1 + 0.15 * max(0, n - 2)) for n in per_gap]
    dy = max(max(h for _, h in size.values()) + 0.55, 1.05 if lab_size else 0.75)
    # x of each column: previous column's right edge + gap + half of this column
    xs, x = [], 0.0
    for L, w in enumerate(col_w):
        x = w / 2 if L == 0 else x + col_w[L - 1] / 2 + gaps[L - 1] + w / 2
        xs.append(x)
    xy = {}
    for L, c in enumerate(cols):
        for i, v in enumerate(c):
            xy[v] = (xs[L], -(i - (len(c) - 1) / 2) * dy)
    boxes = {v: (xy[v][0], xy[v][1], size[v][0], size[v][1]) for v in ids}

    # op colours
    ops = sorted({e.label for e in edges if e.label and not e.dashed})
    op_color = {op: PALETTE[i % len(PALETTE)] for i, op in enumerate(ops)}

    # route edges: pick curvature and label position (deterministic search)
    placed_labels: List[Tuple[float, float, float, float]] = []
    routes = []
    order = sorted(range(len(edges)), key=lambda k: (abs(layer[edges[k].dst] - layer[edges[k].src]),
                                                     layer[edges[k].src], k))
    route_of = {}
    for k in order:
        e = edges[k]
        p1, p2 = xy[e.src], xy[e.dst]
        dxv, dyv = p2[0] - p1[0], p2[1] - p1[1]
        best = None
        for rad in (0.0, -0.15, 0.15, -0.3, 0.3, -0.45, 0.45, -0.6, 0.6):
            c = ((p1[0] + p2[0]) / 2 + rad * dyv, (p1[1] + p2[1]) / 2 - rad * dxv)
            pts = [_bezier(p1, c, p2, t / 20) for t in range(1, 20)]
            pen = 4 * abs(rad)
            for v in ids:
                if v in (e.src, e.dst):
                    continue
                pen += 100 * sum(_inside(pt, boxes[v], 0.08) for pt in pts)
            for other in routes:  # discourage curves that run on top of each other
                opts = other['pts']
                pen += 3 * sum(min(math.hypot(a[0] - b[0], a[1] - b[1]) for b in opts) < 0.06 for a in pts[3:-3])
            tbest = (None, 0.0)
            if k in lab_size:
                w, h = lab_size[k]
                tpen_best = None
                for t in (0.5, 0.45, 0.55, 0.4, 0.6, 0.35, 0.65, 0.3, 0.7, 0.25, 0.75, 0.2, 0.8):
                    lx, ly = _bezier(p1, c, p2, t)
                    lb = (lx, ly, w, h)
                    tpen = 2 * abs(t - 0.5)
                    tpen += 60 * sum(_overlap(lb, b) for b in placed_labels)
                    tpen += 60 * sum(_overlap(lb, boxes[v], 0.02) for v in ids)
                    # a label hiding a stretch of another edge
                    tpen += 0.5 * sum(_inside(q, (lx, ly, w, h)) for other in routes for q in other['pts'])
                    if tpen_best is None or tpen < tpen_best:
                        tpen_best, tbest = tpen, (lb, t)
                pen += tpen_best
            if best is None or pen < best[0] - 1e-9:
                best = (pen, rad, pts, tbest[0])
        _, rad, pts, lb = best
        routes.append({'pts': pts})
        route_of[k] = (rad, lb)
        if lb is not None:
            placed_labels.append(lb)

    # figure
    margin = 0.25
    allx = [b[0] - b[2] / 2 for b in boxes.values()] + [b[0] + b[2] / 2 for b in boxes.values()]
    ally = [b[1] - b[3] / 2 for b in boxes.values()] + [b[1] + b[3] / 2 for b in boxes.values()]
    for lb in placed_labels:
        allx += [lb[0] - lb[2] / 2, lb[0] + lb[2] / 2]
        ally += [lb[1] - lb[3] / 2, lb[1] + lb[3] / 2]
    for r in routes:
        allx += [p[0] for p in r['pts']]
        ally += [p[1] for p in r['pts']]
    x0, x1 = min(allx) - margin, max(allx) + margin
    y0, y1 = min(ally) - margin, max(ally) + margin
    title_h = (_text_size(title, TITLE_FONTSIZE)[1] + 0.2) if title else 0.0
    legend_h = (_text_size(legend, EDGE_FONTSIZE)[1] + 0.1) if legend else 0.0
    width = x1 - x0
    if title:
        width = max(width, _text_size(title, TITLE_FONTSIZE)[0] + 2 * margin)
    if legend:
        width = max(width, _text_size(legend, EDGE_FONTSIZE)[0] + 2 * margin)
    extra = width - (x1 - x0)
    x0, x1 = x0 - extra / 2, x1 + extra / 2
    height = (y1 - y0) + title_h + legend_h
    fig = plt.figure(figsize=(width, height), dpi=DPI)
    ax = fig.add_axes((0, legend_h / height, 1, (y1 - y0) / height))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect('equal')
    ax.axis('off')
    if title:
        fig.text(0.5, 1 - (title_h / 2) / height, title, ha='center', va='center', fontsize=TITLE_FONTSIZE,
                 fontweight='bold', family='DejaVu Sans')
    if legend:
        fig.text(0.5, (legend_h / 2) / height, legend, ha='center', va='center', fontsize=EDGE_FONTSIZE,
                 color='#444444', family='DejaVu Sans')

    patches = {}
    for v in ids:
        cx, cy, w, h = boxes[v]
        n = by_id[v]
        patch = FancyBboxPatch((cx - w / 2, cy - h / 2), w, h, boxstyle='round,pad=0,rounding_size=0.08',
                               facecolor=NODE_COLORS.get(n.kind, NODE_COLORS['node']), edgecolor='#333333',
                               linewidth=1.2, linestyle='--' if n.kind == 'skip' else '-', zorder=3)
        ax.add_patch(patch)
        patches[v] = patch
        ax.text(cx, cy, n.label, ha='center', va='center', fontsize=NODE_FONTSIZE, zorder=4,
                family='DejaVu Sans', color='#777777' if n.kind == 'skip' else 'black')

    labelled = 0
    for k, e in enumerate(edges):
        rad, lb = route_of[k]
        color = e.color or (NONE_EDGE if e.dashed else op_color.get(e.label, PLAIN_EDGE))
        arrow = FancyArrowPatch(xy[e.src], xy[e.dst], connectionstyle=f'arc3,rad={rad}', arrowstyle='-|>',
                                mutation_scale=14, linewidth=1.6 if e.label else 1.2, color=color,
                                linestyle='--' if e.dashed else '-', patchA=patches[e.src],
                                patchB=patches[e.dst], shrinkA=1, shrinkB=1, zorder=2)
        ax.add_patch(arrow)
        if lb is not None:
            ax.text(lb[0], lb[1], e.label, ha='center', va='center', fontsize=EDGE_FONTSIZE, color=color,
                    family='DejaVu Sans', zorder=5,
                    bbox=dict(boxstyle='round,pad=0.12', facecolor='white', edgecolor='none', alpha=0.9))
            if not e.dashed:
                labelled += 1
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, metadata={'Software': None})
    plt.close(fig)
    return labelled


# ----------------------------------------------------------------------------- NAS-Bench-201

def draw_nb201(sample: Mapping[str, str], path: PathLike, title: Optional[str] = None,
               show_none: bool = True) -> int:
    """NAS-Bench-201 cell: nodes 0..3, edge ``i_j`` carries ``sample['i_j']``. ``'none'``
    edges are dashed grey without a label (``show_none=False``: left out). Returns the number
    of operation-labelled edges (the non-``'none'`` edges)."""
    edges_ij = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    missing = [f'{i}_{j}' for i, j in edges_ij if f'{i}_{j}' not in sample]
    if missing:
        raise ValueError(f'NAS-Bench-201 sample misses labels {missing}')
    nodes = [Node(0, '0', 'input'), Node(1, '1'), Node(2, '2'), Node(3, '3', 'output')]
    edges = []
    for i, j in edges_ij:
        op = sample[f'{i}_{j}']
        if op == 'none':
            if show_none:
                edges.append(Edge(i, j, '', dashed=True))
        else:
            edges.append(Edge(i, j, str(op)))
    legend = 'dashed grey: none (zero)' if show_none and any(e.dashed for e in edges) else None
    return draw_dag(nodes, edges, path, title, legend)


# ----------------------------------------------------------------------------- NASNet family

_CONCAT = {'nasnet': 'nasnet', 'darts': 'all', 'enas': 'loose', 'amoebanet': 'loose', 'pnas': 'all'}


def _cell_blocks(sample: Mapping[str, Any], cell: str) -> List[List[Tuple[str, int]]]:
    pat = re.compile(rf'^{re.escape(cell)}/op_(\d+)_(\d+)$')
    found = {}
    for key in sample:
        m = pat.match(str(key))
        if m:
            found[(int(m.group(1)), int(m.group(2)))] = key
    if not found:
        raise ValueError(f'The sample has no {cell!r} cell (labels like {cell!r}/op_2_0)')
    num_blocks = max(j for j, _ in found) - 1
    blocks = []
    for j in range(2, num_blocks + 2):
        genes = []
        for k in range(2):
            op_key, in_key = f'{cell}/op_{j}_{k}', f'{cell}/input_{j}_{k}'
            if op_key not in sample or in_key not in sample:
                raise ValueError(f'The sample misses {op_key!r} or {in_key!r}')
            src = sample[in_key]
            src = src[0] if isinstance(src, (list, tuple)) else src
            if not 0 <= int(src) < j:
                raise ValueError(f'{in_key}={src!r}: block {j} reads states 0..{j - 1}')
            genes.append((str(sample[op_key]), int(src)))
        blocks.append(genes)
    return blocks


def draw_darts_like(sample: Mapping[str, Any], path: PathLike, cell: str = 'normal', title: Optional[str] = None,
                    family: str = 'darts', concat: Optional[str] = None) -> int:
    """A NASNet-family cell (``search_spaces/cells.py``): inputs ``c_{k-2}`` (state 0) and
    ``c_{k-1}`` (state 1), blocks 0..B-1 (states 2..B+1; each adds two operations, the edges),
    and the output ``c_k``, the concatenation of the states the family's rule keeps (grey
    arrows): ``'all'`` blocks (DARTS, PNAS), the unused blocks plus ``c_{k-2}`` in a normal
    cell (``'nasnet'``) or the unused states (``'loose'``: ENAS, AmoebaNet). ``family`` picks
    the rule, ``concat`` overrides it. Returns the number of operation-labelled edges."""
    blocks = _cell_blocks(sample, cell)
    rule = concat or _CONCAT.get(family)
    if rule not in ('all', 'nasnet', 'loose'):
        raise ValueError(f'Unknown concat rule {rule!r} (family {family!r})')
    nb = len(blocks)
    used = {src for genes in blocks for _, src in genes}
    if rule == 'all':
        out = list(range(2, nb + 2))
    else:
        first = 2 if rule == 'nasnet' else 0
        out = [i for i in range(first, nb + 2) if i not in used]
        if rule == 'nasnet' and cell != 'reduce':
            out = [0] + out
    nodes = [Node(0, '$c_{k-2}$', 'input'), Node(1, '$c_{k-1}$', 'input')]
    nodes += [Node(j, str(j - 2)) for j in range(2, nb + 2)]
    nodes.append(Node('out', '$c_{k}$', 'output'))
    edges = []
    for j, genes in enumerate(blocks, start=2):
        for op, src in genes:
            if op == 'none':
                edges.append(Edge(src, j, '', dashed=True))
            else:
                edges.append(Edge(src, j, op))
    edges += [Edge(i, 'out') for i in out]
    return draw_dag(nodes, edges, path, title, legend='grey arrows: concatenated into the cell output')


# ----------------------------------------------------------------------------- recurrent cell

def draw_rnn(sample: Mapping[str, Any], path: PathLike, title: Optional[str] = None, output: str = 'all') -> int:
    """Recurrent cell (``search_spaces/rnn_cells.py``): node 0 from ``x_t`` and ``h_{t-1}``
    (highway, tanh), node ``i`` reads node ``input_i`` (node 1: node 0) with ``activation_i``
    on the edge; ``h_t`` averages nodes 1..N (``output='all'``) or the loose ends
    (``'loose_ends'``). Returns the number of activation-labelled edges (N)."""
    acts = {}
    for key in sample:
        m = re.match(r'^activation_(\d+)$', str(key))
        if m:
            acts[int(m.group(1))] = sample[key]
    if not acts:
        raise ValueError('The sample has no activation_i labels')
    n = max(acts)
    if sorted(acts) != list(range(1, n + 1)):
        raise ValueError(f'activation labels must be activation_1..activation_{n}, got {sorted(acts)}')
    srcs = {}
    for i in range(1, n + 1):
        src = 0 if i == 1 else sample.get(f'input_{i}')
        if src is None:
            raise ValueError(f'The sample misses input_{i}')
        src = src[0] if isinstance(src, (list, tuple)) else src
        if not 0 <= int(src) < i:
            raise ValueError(f'input_{i}={src!r} must be an earlier node 0..{i - 1}')
        srcs[i] = int(src)
    if output == 'all':
        out = list(range(1, n + 1))
    elif output == 'loose_ends':
        read = set(srcs.values())
        out = [i for i in range(1, n + 1) if i not in read]
    else:
        raise ValueError(f"output must be 'all' or 'loose_ends', got {output!r}")
    nodes = [Node('x', '$x_t$', 'input'), Node('h', '$h_{t-1}$', 'input'), Node(0, '0')]
    nodes += [Node(i, str(i)) for i in range(1, n + 1)]
    nodes.append(Node('out', '$h_t$', 'output'))
    edges = [Edge('x', 0), Edge('h', 0)]
    edges += [Edge(srcs[i], i, str(acts[i])) for i in range(1, n + 1)]
    edges += [Edge(i, 'out') for i in out]
    rule = 'average of all nodes 1..N' if output == 'all' else 'average of the loose ends'
    return draw_dag(nodes, edges, path, title, legend=f'grey arrows: $h_t$ = {rule}')


# ----------------------------------------------------------------------------- NAS-Bench-101

_NB101_SHORT = {'conv3x3-bn-relu': 'conv3x3', 'conv1x1-bn-relu': 'conv1x1', 'maxpool3x3': 'maxpool3x3'}


def draw_nasbench101(sample: Mapping[str, Any], path: PathLike, title: Optional[str] = None,
                     prune: bool = True) -> int:
    """NAS-Bench-101 cell (``op1..op5``, ``edge_i_j``): the operations are on the vertices
    (conv3x3 / conv1x1 are conv-BN-ReLU). ``prune=True`` drops vertices off every
    input->output path (as the benchmark does); otherwise they are drawn dashed. Returns the
    number of edges drawn."""
    num_v = 7
    ops = ['input'] + [str(sample[f'op{v}']) for v in range(1, num_v - 1)] + ['output']
    edge_list = []
    for j in range(1, num_v):
        for i in range(j):
            val = sample.get(f'edge_{i}_{j}', 0)
            if val not in (0, 1, True, False):
                raise ValueError(f'edge_{i}_{j} must be 0 or 1, got {val!r}')
            if val:
                edge_list.append((i, j))
    reach = {0}
    for v in range(1, num_v):
        if any(i in reach for i, j in edge_list if j == v):
            reach.add(v)
    coreach = {num_v - 1}
    for v in range(num_v - 2, -1, -1):
        if any(j in coreach for i, j in edge_list if i == v):
            coreach.add(v)
    live = reach & coreach
    if 0 not in live:
        raise ValueError('Cell input is not connected to its output')
    shown = [v for v in range(num_v) if v in live or not prune]
    kinds = {0: 'input', num_v - 1: 'output'}
    nodes = [Node(v, _NB101_SHORT.get(ops[v], ops[v]), kinds.get(v, 'node' if v in live else 'skip'))
             for v in shown]
    edges = [Edge(i, j, dashed=not (i in live and j in live)) for i, j in edge_list if i in shown and j in shown]
    draw_dag(nodes, edges, path, title,
             legend='conv = conv-BN-ReLU; several inputs: summed (output: concatenated)')
    return len(edges)


# ----------------------------------------------------------------------------- layer-wise spaces

def _natural(key: str):
    return [int(t) if t.isdigit() else t for t in re.split(r'(\d+)', str(key))]


def draw_chain(sample: Mapping[str, Any], path: PathLike, title: Optional[str] = None,
               labels: Optional[Sequence[str]] = None, skip_ops: Sequence[str] = ('identity', 'skip_connect'),
               input_label: str = 'input', output_label: str = 'output', marks: Optional[Mapping[str, str]] = None,
               wrap: int = 0) -> int:
    """A layer-wise sample as a chain ``input -> label: op -> ... -> output`` (``labels``:
    the layers in order, default: the sample's keys in natural order). Layers whose op is in
    ``skip_ops`` are grey and dashed. ``marks`` adds a line under a layer's op (e.g. the
    stride). Returns the number of layers drawn."""
    keys = list(labels) if labels is not None else sorted(sample, key=_natural)
    nodes = [Node('in', input_label, 'input')]
    for key in keys:
        op = sample[key]
        text = f'{key}\n{op}' + (f'\n{marks[key]}' if marks and key in marks else '')
        nodes.append(Node(key, text, 'skip' if op in skip_ops else 'node'))
    nodes.append(Node('out', output_label, 'output'))
    ids = [n.id for n in nodes]
    edges = [Edge(a, b) for a, b in zip(ids, ids[1:])]
    draw_dag(nodes, edges, path, title)
    return len(keys)


def draw_macro(sample: Mapping[str, str], path: PathLike, title: Optional[str] = None) -> int:
    """NAS-Bench-Macro sample (``layer0..layer7`` -> identity / mb_k3_e3 / mb_k5_e6): a chain;
    the first layer of each stage (stride 2, doubled width) is marked."""
    stages = (2, 3, 3)
    labels = [f'layer{i}' for i in range(sum(stages))]
    firsts, at = set(), 0
    for s in stages:
        firsts.add(f'layer{at}')
        at += s
    marks = {lab: 'stride 2' for lab in labels if lab in firsts}
    return draw_chain(sample, path, title, labels=labels, marks=marks, input_label='stem', output_label='head')
