"""One analysis of a network, under every job that reads an architecture out of layers.

`diff`, `draw`, `convert --like` and `identify` all see a network the same way, so a shape
that one of them understands the others understand too:

- `network.py`: `Side`, a network to analyse (its IR, its weights and where they came from);
- `ops.py`: the IR as logical ops, in the canonical form (representation folded away:
  BatchNorm folded or not, conv biases before BatchNorm, a trailing Softmax, flattening,
  the spellings of global pooling) or, for `diff --strict`, every layer as written;
- `topology.py`: the main path, each block's shortcut (identity, projection, zero-pad),
  blocks, stages, stem and head (`analyse`, `Analysis`), and the paper's description of one
  analysis (`architecture`, `layout_text`, `stage_text`);
- `compare.py`: how two analyses' ops and shortcuts are compared (`attr_diff`,
  `same_shortcut`);
- `units.py`: a network as interned units, so that two networks are the same architecture
  exactly when their outputs get the same id, the first difference named otherwise, and
  the unit-to-unit matching that carries weights from one onto the other.

May import: `netgen.arch` and `netgen.errors` only. It reads the IR and the weights, never a
file format, a job or a command; every job that needs it imports it.
"""
