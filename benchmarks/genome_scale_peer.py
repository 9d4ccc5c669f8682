"""The PyTorch Geometric peer of `genome_scale.py` (run by it as `--role peer`): TranscriptionNet's
architecture in PyG (GATConv stacks, semantic attention fusion, FunDNN heads), loaded with the
tfnet_jax side's initial parameters and trained on the very same batches."""
from __future__ import annotations

import json
import time

import numpy as np
from genome_scale_common import median, peer_edges, write_json
from probes import OtherCPU, peak_rss_gb


def build_peer(model_cfg, feature_dim, num_layers, num_types, num_readouts, logw_bias: bool):
    import torch
    from torch import nn
    from torch_geometric.nn import GATConv
    from torch_geometric.utils import softmax
    F = nn.functional

    class LogWeightGATConv(GATConv):
        """GATConv with log(edge weight) added to the attention logits after the LeakyReLU and
        before the softmax over each receiver's edges, as tfnet_jax's GraphAttention does.

        `edge_attr` is the log weight [E]. GATConv's own edge term (edge_dim=...) would put a
        learned projection of it inside the LeakyReLU, a different function; with
        edge_dim=None GATConv ignores edge_attr, and only this hook reads it."""

        def edge_update(self, alpha_j, alpha_i, edge_attr, index, ptr, dim_size):
            alpha = alpha_j if alpha_i is None else alpha_j + alpha_i
            alpha = F.leaky_relu(alpha, self.negative_slope)
            if edge_attr is not None:
                alpha = alpha + edge_attr.view(-1, 1)
            alpha = softmax(alpha, index, ptr, dim_size)
            return F.dropout(alpha, p=self.dropout, training=self.training)

    conv_class = LogWeightGATConv if logw_bias else GATConv

    class GATLayer(nn.Module):
        """tfnet_jax's GraphAttention wrapping: conv -> ELU -> dropout -> LayerNorm(x + out)."""

        def __init__(self, dim, heads, dropout):
            super().__init__()
            # proj without bias, no attention dropout, self-loops already in the edges.
            self.conv = conv_class(dim, dim // heads, heads=heads, concat=True, add_self_loops=False,
                                   bias=False)
            self.norm, self.drop = nn.LayerNorm(dim), nn.Dropout(dropout)

        def forward(self, x, edge_index, log_w):
            out = self.conv(x, edge_index, edge_attr=log_w)
            return self.norm(x + self.drop(F.elu(out)))

    class Block(nn.Module):
        def __init__(self, d, dropout):
            super().__init__()
            self.norm, self.inner, self.outer = nn.LayerNorm(d), nn.Linear(d, d), nn.Linear(d, d)
            self.drop = nn.Dropout(dropout)

        def forward(self, x):
            return x + self.outer(self.drop(F.gelu(self.inner(self.norm(x)), approximate="tanh")))

    class Head(nn.Module):  # FunDNN: in -> gelu -> residual blocks -> LayerNorm -> out
        def __init__(self, d_in, d, blocks, d_out, dropout):
            super().__init__()
            self.inp, self.norm, self.out = nn.Linear(d_in, d), nn.LayerNorm(d), nn.Linear(d, d_out)
            self.blocks = nn.ModuleList([Block(d, dropout) for _ in range(blocks)])

        def forward(self, x):
            h = F.gelu(self.inp(x), approximate="tanh")
            for block in self.blocks:
                h = block(h)
            return self.out(self.norm(h))

    class Net(nn.Module):
        def __init__(self, c):
            super().__init__()
            d = c["hidden"]
            self.feature_proj = nn.Linear(feature_dim, d)
            self.gat = nn.ModuleList([nn.ModuleList([GATLayer(d, c["heads"], c["dropout"])
                                                     for _ in range(c["gat_layers"])])
                                      for _ in range(num_layers)])
            self.fusion_proj = nn.Linear(d, c["fusion_dim"])
            self.query = nn.Parameter(torch.randn(c["fusion_dim"]) * 0.1)
            self.heads = nn.ModuleList([Head(d, c["head_hidden"], c["head_blocks"], num_readouts,
                                             c["dropout"]) for _ in range(num_types)])

        def embed(self, feats, graphs):
            x, per_layer = self.feature_proj(feats), []
            for stack, (edge_index, log_w) in zip(self.gat, graphs):
                h = x
                for layer in stack:
                    h = layer(h, edge_index, log_w)
                per_layer.append(h)
            per_layer = torch.stack(per_layer)  # [L, N, D]
            weights = torch.softmax(torch.tanh(self.fusion_proj(per_layer)) @ self.query, dim=0)
            return torch.einsum("ln,lnd->nd", weights, per_layer)

        def forward(self, feats, graphs, idx, ptype):
            genes = self.embed(feats, graphs)[idx]
            # Every head on every row, then pick by type: the same work as the JAX model.
            outs = torch.stack([head(genes) for head in self.heads])
            return torch.einsum("bt,tbr->br", F.one_hot(ptype, len(self.heads)).float(), outs)

    return Net(model_cfg)


def load_jax_params(net, flat) -> None:
    """Copy tfnet_jax's initial parameters (flat "a/0/b" keys) into the peer (KeyError if the
    JAX model's parameter names have changed)."""
    import torch

    def t(key):
        return torch.from_numpy(np.asarray(flat[key], np.float32))

    def linear(module, prefix):
        module.weight.data.copy_(t(prefix + "/kernel").T)
        if module.bias is not None:
            module.bias.data.copy_(t(prefix + "/bias"))

    def norm(module, prefix):
        module.weight.data.copy_(t(prefix + "/scale"))
        module.bias.data.copy_(t(prefix + "/bias"))

    linear(net.feature_proj, "feature_proj")
    for i, stack in enumerate(net.gat):
        for j, layer in enumerate(stack):
            prefix = f"gat/{i}/{j}"
            layer.conv.lin.weight.data.copy_(t(prefix + "/proj/kernel").T)
            layer.conv.att_src.data.copy_(t(prefix + "/att_src")[None])
            layer.conv.att_dst.data.copy_(t(prefix + "/att_dst")[None])
            norm(layer.norm, prefix + "/norm")
    linear(net.fusion_proj, "fusion/proj")
    net.query.data.copy_(t("fusion/query"))
    for i, head in enumerate(net.heads):
        linear(head.inp, f"heads/{i}/inp")
        norm(head.norm, f"heads/{i}/norm")
        linear(head.out, f"heads/{i}/out")
        for j, block in enumerate(head.blocks):
            norm(block.norm, f"heads/{i}/blocks/{j}/norm")
            linear(block.inner, f"heads/{i}/blocks/{j}/inner")
            linear(block.outer, f"heads/{i}/blocks/{j}/outer")
    used = {k for k in flat.files}
    if sum(np.size(flat[k]) for k in used) != sum(p.numel() for p in net.parameters()):
        raise KeyError("parameter counts differ")


def peer_side(args):
    work, out = args.work, {}
    result_path = work / "peer.json"
    import torch
    import torch_geometric
    from torch import nn
    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(args.seed)
    out.update(torch=torch.__version__, torch_geometric=torch_geometric.__version__,
               threads=torch.get_num_threads(), gat=args.peer_gat)

    configs = json.loads((work / "configs.json").read_text())
    model_cfg, train_cfg = configs["model"], configs["train"]
    inputs = np.load(work / "peer_inputs.npz")
    layers = np.load(work / "layers.npz")
    meta = json.loads((work / "meta.json").read_text())
    n, num_layers = meta["num_genes"], meta["num_layers"]
    out["rss_after_data_gb"] = peak_rss_gb()

    t0 = time.perf_counter()
    graphs = []
    for i in range(num_layers):
        src, dst, w = peer_edges(layers[f"senders_{i}"], layers[f"receivers_{i}"], layers[f"weights_{i}"], n)
        edge_index = torch.from_numpy(np.stack([src, dst]))
        graphs.append((edge_index, torch.from_numpy(np.log(w + 1e-9).astype(np.float32))))
    out["graph_build_s"] = time.perf_counter() - t0
    feats = torch.from_numpy(np.ascontiguousarray(inputs["features"][:n]))  # drop the padding row
    mean, sd = inputs["target_mean"], inputs["target_sd"]
    net = build_peer(model_cfg, feats.shape[1], num_layers, len(configs["types"]), mean.shape[1],
                     args.peer_gat == "logw")
    out["parameters"] = int(sum(p.numel() for p in net.parameters()))
    try:
        with np.load(work / "jax_params.npz") as flat:
            load_jax_params(net, flat)
        out["same_init"] = True
    except (KeyError, RuntimeError, OSError) as err:  # names or shapes changed: own init
        out["same_init"] = f"no ({type(err).__name__}: {err})"
    opt = torch.optim.AdamW(net.parameters(), lr=train_cfg["learning_rate"],
                            weight_decay=train_cfg["weight_decay"])
    beta = float(model_cfg["beta"])

    def loss_fn(pred, target, mask):  # tfnet_jax.train.losses.mse_pearson_loss
        mse = ((pred - target) ** 2).mean(-1)
        pc, tc = pred - pred.mean(-1, keepdim=True), target - target.mean(-1, keepdim=True)
        r = (pc * tc).sum(-1) / torch.sqrt((pc * pc).sum(-1) * (tc * tc).sum(-1) + 1e-8)
        m = mask / mask.sum().clamp(min=1.0)
        return (1 - beta) * (mse * m).sum() + beta * (1 - (r * m).sum())

    def step(size, s):
        with np.load(work / "batches" / f"b{size}_{s}.npz") as f:
            b = {k: torch.from_numpy(f[k]) for k in f.files}
        if "lr" in b:  # tfnet_jax's schedule (warmup_cosine by default) at this step
            for group in opt.param_groups:
                group["lr"] = float(b["lr"])
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(feats, graphs, b["pert_index"].long(), b["pert_type"].long()),
                       b["target"], b["mask"])
        loss.backward()
        if train_cfg["grad_clip"]:
            nn.utils.clip_grad_norm_(net.parameters(), train_cfg["grad_clip"])
        opt.step()
        return loss.item()

    jax_out = json.loads((work / "jax.json").read_text())
    plan, B = jax_out["plan"], jax_out["batch_size"]
    steps = {k: list(range(*v)) if v else [] for k, v in plan.items()}
    net.eval()
    with torch.no_grad(), np.load(work / "batches" / f"b{B}_0.npz") as f:
        b = {k: torch.from_numpy(f[k]) for k in f.files}
        pred = net(feats, graphs, b["pert_index"].long(), b["pert_type"].long())
        out["init_eval_loss"] = float(loss_fn(pred, b["target"], b["mask"]))
    net.train()
    t0 = time.perf_counter()
    out["first_loss"] = step(B, 0)
    out["compile_s"] = time.perf_counter() - t0  # eager: no compile, the first step's wall
    for s in steps["warmup"]:
        step(B, s)
    times = []
    with OtherCPU() as busy:
        for s in steps["timed"]:
            t0 = time.perf_counter()
            step(B, s)
            times.append(time.perf_counter() - t0)
        if steps["epoch"]:
            t0 = time.perf_counter()
            for s in steps["epoch"]:
                loss = step(B, s)
            out["epoch_s"] = time.perf_counter() - t0
            out["epoch_loss"] = loss
    out.update(step_s=median(times), step_times_s=times, other_procs_cores=busy.cores)
    if args.torch_threads > 1:  # under load, spinning OpenMP threads can cost more than they give
        torch.set_num_threads(1)
        times = []
        for s in steps["timed"]:
            t0 = time.perf_counter()
            step(B, s)
            times.append(time.perf_counter() - t0)
        torch.set_num_threads(args.torch_threads)
        out["step_s_1_thread"] = median(times)
    out["rss_after_train_gb"] = peak_rss_gb()
    write_json(result_path, out)

    # Genome-wide prediction: the graph embedding once, then each type's head over all genes.
    net.eval()
    genes = torch.arange(n)
    for key in ("predict_first_s", "predict_s"):
        t0, n_rows = time.perf_counter(), 0
        with torch.no_grad():
            embedding = net.embed(feats, graphs)
            for t_id, head in enumerate(net.heads):
                for start in range(0, n, 1024):  # fam.predict's chunk size
                    pred = head(embedding[genes[start:start + 1024]]).numpy() * sd[t_id] + mean[t_id]
                    n_rows += len(pred.astype(np.float32))
        out[key] = time.perf_counter() - t0
    out["predict_rows"] = n_rows
    out["rss_after_predict_gb"] = peak_rss_gb()
    write_json(result_path, out)

    if not args.no_full_batch and "full_batch_size" in jax_out:
        size = jax_out["full_batch_size"]
        net.train()
        times = []
        try:
            with OtherCPU() as busy:
                for s in range(args.full_steps + 1):
                    t0 = time.perf_counter()
                    step(size, s)
                    times.append(time.perf_counter() - t0)
            out.update(full_batch_size=size, full_batch_compile_s=times[0],
                       full_batch_step_s=median(times[1:]), full_batch_other_procs_cores=busy.cores)
        except RuntimeError as err:  # e.g. "DefaultCPUAllocator: can't allocate memory"
            out["full_batch_skipped"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
    out["peak_rss_gb"] = peak_rss_gb()
    write_json(result_path, out)
