"""Export a generator or its synthesis network to ONNX, for onnxruntime and other ONNX runtimes.

    data = onnx_bytes(G, graph='generator')        # inputs z [N, z_dim], truncation_psi [] -> img [N, C, H, W]
    data = onnx_bytes(G, graph='synthesis')        # input ws [N, num_ws, w_dim] -> img [N, C, H, W]

The batch axis is dynamic; noise is the network's constant noise (noise_mode='const'), so a file renders
exactly what G(z, noise_mode='const') renders. The graph is traced on the reference ops (ops.use_impl('ref'),
plain PyTorch: standard ONNX operators only, no custom kernels) with the shared-weight modulated convolution
(fused_modconv=False), whose convolution weights do not depend on the batch size. torch.onnx's exporter
(torch.export based; it needs onnxscript, the `onnx` extra) writes it at opset OPSET.
"""

import copy
import warnings

import numpy as np
import torch

from .errors import ExportError
from .. import ops

__all__ = ['GRAPHS', 'OPSET', 'onnx_bytes']

GRAPHS = ('generator', 'synthesis')
OPSET = 18                  # ONNX 1.13 (2022): onnxruntime 1.14 and later
MAX_BYTES = 2 ** 31 - 1     # one protobuf message (weights kept inside the file)

#----------------------------------------------------------------------------
# The truncation trick (Karras et al. 2019, Section 3): w' = w_avg + psi * (w - w_avg) on rows [0, cutoff),
# with psi a graph input.

def truncate(ws, w_avg, psi, cutoff=None):
    if cutoff is None:
        return w_avg + psi * (ws - w_avg)
    return torch.cat([w_avg + psi * (ws[:, :cutoff] - w_avg), ws[:, cutoff:]], dim=1)

#----------------------------------------------------------------------------
# The two graphs, as modules whose forward takes exactly the graph's inputs.

class SynthesisGraph(torch.nn.Module):
    def __init__(self, G):
        super().__init__()
        self.synthesis = G.synthesis

    def forward(self, ws):                                          # [N, num_ws, w_dim] -> [NCHW]
        return self.synthesis(ws, noise_mode='const', force_fp32=True, fused_modconv=False)

class GeneratorGraph(torch.nn.Module):
    def __init__(self, G, psi=None, cutoff=None):
        super().__init__()
        self.mapping, self.synthesis = G.mapping, G.synthesis
        self.psi, self.cutoff = psi, cutoff                         # psi: None = a graph input

    def forward(self, z, psi=None):                                 # [N, z_dim], [] -> [NCHW]
        ws = self.mapping(z, None, update_emas=False)
        psi = self.psi if psi is None else psi
        if not (isinstance(psi, float) and psi == 1):
            ws = truncate(ws, self.mapping.w_avg, psi, self.cutoff)
        return self.synthesis(ws, noise_mode='const', force_fp32=True, fused_modconv=False)

#----------------------------------------------------------------------------
# Checks that need no tracing: what the graph cannot hold is refused before anything is exported.

def check_request(G, graph, truncation_psi, truncation_cutoff):
    if graph not in GRAPHS:
        raise ExportError(f'unknown ONNX graph {graph!r}; one of {GRAPHS}')
    if not hasattr(G, 'synthesis') or not hasattr(G, 'mapping'):
        raise ExportError(f'ONNX export takes a Generator, not a {type(G).__name__}')
    if graph == 'synthesis':
        if truncation_psi is not None or truncation_cutoff is not None:
            raise ExportError("the synthesis graph takes ws, which are truncated already: truncation_psi and "
                              "truncation_cutoff apply to graph='generator' only")
        return
    if G.c_dim > 0:
        raise ExportError(f'a conditional network (c_dim={G.c_dim}) is not exported to ONNX: its generator graph '
                          "would need the label input; export graph='synthesis' (ws -> image) instead")
    if G.z_dim <= 0:
        raise ExportError('the network has no z input (z_dim=0)')
    if truncation_psi is not None and not np.isfinite(truncation_psi):
        raise ExportError(f'truncation_psi must be a finite number, not {truncation_psi!r}')
    if truncation_cutoff is not None and not 0 <= truncation_cutoff <= G.num_ws:
        raise ExportError(f'truncation_cutoff must be in [0, {G.num_ws}] (rows of ws), not {truncation_cutoff!r}')
    if getattr(G.mapping, 'w_avg', None) is None and (truncation_psi is None or truncation_psi != 1):
        raise ExportError('the network keeps no w_avg, so it cannot be truncated: give truncation_psi=1')

def _exporter():
    try:
        import onnxscript    # noqa: F401 (torch.onnx's exporter needs it; say so before tracing)
        import onnx          # noqa: F401
    except ImportError as e:
        raise ExportError(f'ONNX export needs onnx and onnxscript ({e}): pip install "stylegan2_lib[onnx]"') from None
    return torch.onnx.export

#----------------------------------------------------------------------------
# Trace and serialise: a CPU float32 copy of G (the caller's network is left as it was), batch 2 as the
# example, the batch axis marked dynamic.

def _graph_and_inputs(G, graph, truncation_psi, truncation_cutoff):
    if graph == 'synthesis':
        ws = torch.zeros([2, G.num_ws, G.w_dim])
        return SynthesisGraph(G), (ws,), ['ws'], ({0: torch.export.Dim('batch')},)
    z = torch.zeros([2, G.z_dim])
    if truncation_psi is not None:
        return (GeneratorGraph(G, float(truncation_psi), truncation_cutoff), (z,), ['z'],
                ({0: torch.export.Dim('batch')},))
    return (GeneratorGraph(G, None, truncation_cutoff), (z, torch.tensor(1.0)), ['z', 'truncation_psi'],
            ({0: torch.export.Dim('batch')}, None))

def _metadata(G, graph, truncation_psi, truncation_cutoff):
    meta = {'stylegan2_lib.graph': graph, 'z_dim': G.z_dim, 'w_dim': G.w_dim, 'num_ws': G.num_ws,
            'img_resolution': G.img_resolution, 'img_channels': G.img_channels, 'noise': 'const',
            'output': 'img [N, C, H, W] float32, about [-1, 1]: uint8 = clip(img * 127.5 + 128, 0, 255)'}
    if graph == 'generator':
        meta['truncation_psi'] = 'input' if truncation_psi is None else repr(float(truncation_psi))
        meta['truncation_cutoff'] = 'none' if truncation_cutoff is None else truncation_cutoff
    return {k: str(v) for k, v in meta.items()}

def onnx_bytes(G, graph='generator', truncation_psi=None, truncation_cutoff=None, opset=OPSET):
    """The bytes of an ONNX file of G's generator (z [N, z_dim] and, unless `truncation_psi` fixes it, a
    scalar float input truncation_psi -> img) or synthesis network (ws [N, num_ws, w_dim] -> img); img is
    [N, C, H, W] float32, constant noise, N dynamic. ExportError for what ONNX export cannot hold."""
    check_request(G, graph, truncation_psi, truncation_cutoff)
    export = _exporter()
    G = copy.deepcopy(G).to('cpu', torch.float32).eval().requires_grad_(False)
    module, inputs, names, dynamic = _graph_and_inputs(G, graph, truncation_psi, truncation_cutoff)
    # torch.export and onnxscript warn about their own internals (deprecations); the result is what tests check.
    with ops.use_impl('ref'), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        program = export(module.eval(), inputs, None, input_names=names, output_names=['img'], dynamic_shapes=dynamic,
                         opset_version=opset, dynamo=True, external_data=False, optimize=True, verbose=False)
    model = program.model_proto
    for key, value in _metadata(G, graph, truncation_psi, truncation_cutoff).items():
        model.metadata_props.add(key=key, value=value)
    if model.ByteSize() > MAX_BYTES:
        raise ExportError(f'the network is {model.ByteSize() / 2**30:.1f} GiB as ONNX, over the 2 GiB of one ONNX file')
    return model.SerializeToString()
