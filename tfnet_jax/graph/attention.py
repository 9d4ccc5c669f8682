"""Graph-attention aggregation over receiver-partitioned edge blocks, on one device or many.

`aggregate(h, score_src, score_dst, graph)` computes, for every receiver i,
    alpha(e) = softmax over i's edges of leaky_relu(score_src[j] + score_dst[i]) + log w(e)
    out[i]   = sum_e alpha(e) * h[j]
over a `GraphBlocks` (`tfnet_jax.graph.blocks`; S receiver shards):
- with S > 1 under a mesh whose data axis has S devices: `shard_map`, each device gathering
  every node's h (all_gather) and aggregating its own receivers, so per-device edge work
  and activation memory fall as 1/S (node-wise work falls too: arrays are row-sharded);
- otherwise block by block on one device (same numbers);
an optional `active` mask [M] skips the receivers outside a training step's receptive field
(their rows come out as 0). Over a `SubGraph` (a receptive field's few rows) it is one block.
On CPU the per-block work runs in a fused C++ kernel (`cpu_kernel.py`); elsewhere, or with
TFNET_JAX_GAT_KERNEL=xla, in XLA gather/segment ops.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from tfnet_jax.graph import cpu_kernel
from tfnet_jax.graph.blocks import GraphBlocks, SubGraph

NEGATIVE_SLOPE = 0.2


def use_fused_kernel() -> bool:
    return jax.default_backend() == "cpu" and cpu_kernel.fused_kernel_ready()


# ---------------------------------------------------------------- one block, XLA ops
def _aggregate_xla(h, score_src, score_dst, senders, receivers, log_weights, active, slope):
    n = score_dst.shape[0]
    # Padding edges point at receiver n: one extra segment, dropped at the end.
    dst = jnp.concatenate([score_dst, jnp.zeros_like(score_dst[:1])])
    logits = jax.nn.leaky_relu(score_src[senders] + dst[receivers], slope) + log_weights[:, None]
    top = jax.ops.segment_max(logits, receivers, num_segments=n + 1, indices_are_sorted=True)
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    weights = jnp.exp(logits - jax.lax.stop_gradient(top)[receivers])
    total = jax.ops.segment_sum(weights, receivers, num_segments=n + 1, indices_are_sorted=True)
    alpha = weights / jnp.where(total > 0, total, 1.0)[receivers]
    out = jax.ops.segment_sum(h[senders] * alpha[..., None], receivers, num_segments=n + 1,
                              indices_are_sorted=True)
    return out[:n] * active[:, None, None].astype(out.dtype)


# ---------------------------------------------------------------- one block, fused CPU kernel
def _varying_axes(x) -> frozenset:
    manual = getattr(jax.typeof(x), "manual_axis_type", None)
    return frozenset(manual.varying) if manual is not None else frozenset()


def _vary_like(value, *like):
    """Inside shard_map, type an FFI result as varying over the mesh axes its inputs vary
    over (XLA's custom call does not carry that type; autodiff checks it)."""
    axes = frozenset().union(*(_varying_axes(x) for x in like)) - _varying_axes(value)
    return jax.lax.pcast(value, tuple(sorted(axes)), to="varying") if axes else value


@partial(jax.custom_vjp, nondiff_argnums=(7,))
def _aggregate_fused(h, score_src, score_dst, indptr, senders, log_weights, active, slope):
    return _fused_forward(_pack(h, score_src), score_dst, indptr, senders, log_weights, active,
                          slope)[0]


def _pack(h, score_src):
    """[M, H*D + H]: each node's h and score_src side by side (one memory row per sender)."""
    return jnp.concatenate([h.reshape(h.shape[0], -1), score_src], axis=1)


def _fused_forward(packed, score_dst, indptr, senders, log_weights, active, slope):
    n, heads = score_dst.shape
    dim = (packed.shape[1] - heads) // heads
    call = jax.ffi.ffi_call(cpu_kernel.FORWARD,
                            (jax.ShapeDtypeStruct((n, heads, dim), jnp.float32),
                             jax.ShapeDtypeStruct((senders.shape[0], heads), jnp.float32)))
    out, alpha = call(packed, score_dst, indptr, senders, log_weights, active,
                      slope=np.float32(slope))
    inputs = (packed, score_dst, indptr, senders, log_weights, active)
    return _vary_like(out, *inputs), _vary_like(alpha, *inputs)


def _fused_fwd(h, score_src, score_dst, indptr, senders, log_weights, active, slope):
    packed = _pack(h, score_src)
    out, alpha = _fused_forward(packed, score_dst, indptr, senders, log_weights, active, slope)
    return out, (packed, score_dst, indptr, senders, alpha, active)


def _fused_bwd(slope, residuals, d_out):
    packed, score_dst, indptr, senders, alpha, active = residuals
    call = jax.ffi.ffi_call(cpu_kernel.BACKWARD,
                            (jax.ShapeDtypeStruct(packed.shape, jnp.float32),
                             jax.ShapeDtypeStruct(score_dst.shape, jnp.float32)))
    d_packed, d_dst = call(d_out, packed, score_dst, indptr, senders, alpha, active,
                           slope=np.float32(slope))
    heads = score_dst.shape[1]
    d_h = d_packed[:, :-heads].reshape(packed.shape[0], heads, -1)
    d_src = d_packed[:, -heads:]
    return (_vary_like(d_h, packed), _vary_like(d_src, packed), _vary_like(d_dst, score_dst),
            None, None, None, None)


_aggregate_fused.defvjp(_fused_fwd, _fused_bwd)


def _aggregate_block(h, score_src, score_dst, indptr, senders, receivers, log_weights, active,
                     slope, fused):
    if fused:
        return _aggregate_fused(h, score_src, score_dst, indptr, senders, log_weights, active, slope)
    return _aggregate_xla(h, score_src, score_dst, senders, receivers, log_weights, active, slope)


# ---------------------------------------------------------------- every block
def _data_mesh(num_shards: int):
    """(the ambient mesh, its axis) when it is the engine's one-axis data mesh with one device
    per shard, else None (the engine names the axis; the graph only follows it)."""
    mesh = jax.sharding.get_abstract_mesh()
    if num_shards > 1 and not mesh.empty and len(mesh.axis_names) == 1 \
            and mesh.shape[mesh.axis_names[0]] == num_shards:
        return mesh, mesh.axis_names[0]
    return None


def aggregate(h, score_src, score_dst, graph: GraphBlocks | SubGraph, active=None,
              slope: float = NEGATIVE_SLOPE):
    """h [M, H, D], score_src [M, H] (M = graph.padded_nodes, or the input rows of a
    SubGraph), score_dst [C, H] (C = M, or the SubGraph's receivers), optional `active` [M]
    int32 (receivers to compute; default all) -> out [C, H, D]."""
    fused = use_fused_kernel()
    if isinstance(graph, SubGraph):
        rows = graph.receivers.shape[0]
        return _aggregate_block(h, score_src, score_dst, graph.indptr, graph.senders,
                                graph.edge_rows, graph.log_weights, jnp.ones(rows, jnp.int32),
                                slope, fused)
    if active is None:
        active = jnp.ones(graph.padded_nodes, jnp.int32)
    sharded = _data_mesh(graph.num_shards)
    if sharded is not None:
        mesh, axis = sharded

        def local(h, score_src, score_dst, active, indptr, senders, receivers, log_weights):
            h_all = jax.lax.all_gather(h, axis, tiled=True)
            src_all = jax.lax.all_gather(score_src, axis, tiled=True)
            return _aggregate_block(h_all, src_all, score_dst, indptr[0], senders[0], receivers[0],
                                    log_weights[0], active, slope, fused)
        return jax.shard_map(local, mesh=mesh, in_specs=P(axis), out_specs=P(axis))(
            h, score_src, score_dst, active, graph.indptr, graph.senders, graph.receivers,
            graph.log_weights)
    n = graph.shard_nodes
    return jnp.concatenate([
        _aggregate_block(h, score_src, score_dst[s * n:(s + 1) * n], graph.indptr[s],
                         graph.senders[s], graph.receivers[s], graph.log_weights[s],
                         active[s * n:(s + 1) * n], slope, fused)
        for s in range(graph.num_shards)])
