"""The simulator's architecture panel extensions (tfnet_jax/data/genotype/synthetic.py)."""
import numpy as np
import pandas as pd
import pytest

from tfnet_jax.data.genotype.synthetic import (
    GenoSimConfig,
    combine_simulations,
    nonadditive_share,
    simulate,
    write_simulation,
)

BASE = dict(num_genes=6, num_individuals=200, region_length=60_000, max_variants=60, null_fraction=0.0,
            seed=4)


@pytest.fixture(scope="module")
def product():
    return simulate(GenoSimConfig(**BASE, effect_seed=1, dominance_share=0.0, interaction_share=0.6))


def test_regions_reused_across_architectures(product):
    additive = simulate(GenoSimConfig(**BASE, effect_seed=2, mode="additive"), product.regions)
    for a, b in zip(product.variants, additive.variants):
        assert np.array_equal(a[2], b[2]) and np.array_equal(a[3], b[3]) and np.array_equal(a[4], b[4])
    gene = product.gene_rows[0][0]
    assert not np.allclose(product.expression[gene], additive.expression[gene])
    # Regions of other genotype fields, or without an effect stream, are refused.
    with pytest.raises(ValueError, match="regions"):
        simulate(GenoSimConfig(**{**BASE, "num_individuals": 100}, effect_seed=2), product.regions)
    with pytest.raises(ValueError, match="regions"):
        simulate(GenoSimConfig(**BASE), product.regions)


def test_measured_nonadditive_share(product):
    additive = simulate(GenoSimConfig(**BASE, effect_seed=2, mode="additive"), product.regions)
    add = [t["nonadditive_share"] for t in additive.truth["genes"].values()]
    prod = [t["nonadditive_share"] for t in product.truth["genes"].values()]
    assert max(add) < 1e-9          # an additive value is fitted exactly by its causal dosages
    assert np.mean(prod) > 0.3      # products of centred dosages are mostly not additive
    # The measure itself: a value made of a pure product of two +-1 codings has no additive part.
    x = np.array([[0, 0], [0, 2], [2, 0], [2, 2]] * 5, float)
    assert nonadditive_share((x[:, 0] - 1) * (x[:, 1] - 1), x) == pytest.approx(1.0)
    assert nonadditive_share(x @ [1.0, -2.0], x) == pytest.approx(0.0, abs=1e-12)


def test_recessive_and_carrier_kinds_are_planted(product):
    for kind in ("recessive_share", "carrier_share"):
        sim = simulate(GenoSimConfig(**BASE, effect_seed=3, dominance_share=0.0, interaction_share=0.0,
                                     **{kind: 0.6}), product.regions)
        record = next(iter(sim.truth["genes"].values()))
        assert kind.split("_")[0] in record
        assert np.mean([t["nonadditive_share"] for t in sim.truth["genes"].values()]) > 0.05


def test_heritability_draw_and_enrichment(product):
    cfg = GenoSimConfig(**{**BASE, "num_genes": 40, "null_fraction": 0.25, "max_variants": 30,
                           "region_length": 30_000}, effect_seed=1, heritability_draw="beta",
                        causal_annotation=2, annotation_effect=3.0, mode="additive")
    sim = simulate(cfg)
    h2 = np.array([t["heritability"] for t in sim.truth["genes"].values()])
    assert (h2 == 0).sum() == 10 and ((h2[h2 > 0] >= 0.02) & (h2[h2 > 0] <= 0.5)).all()
    assert len(set(h2[h2 > 0].round(6))) == 30  # drawn per gene
    per_variant = {vid: row for v in sim.variants for vid, row in zip(v[2], v[4][:, 2])}
    causal = [per_variant[c] for t in sim.truth["genes"].values() for c in t["causal"]]
    assert len(causal) == 150 and np.mean(causal) > 1.0  # P(causal) rises with annotation 2 only


def test_untyped_causal_and_combined_cohort(product, tmp_path):
    untyped = simulate(GenoSimConfig(**BASE, effect_seed=5, mode="additive", untyped_causal=True),
                       product.regions)
    owner = np.arange(BASE["num_genes"]) % 2
    combined = combine_simulations([product, untyped], owner)
    paths = write_simulation(combined, tmp_path)
    bim = pd.read_csv(paths["bed"] + ".bim", sep="\t", header=None)
    expression = pd.read_csv(paths["expression"], index_col=0)
    for g, (gene, *_) in enumerate(combined.gene_rows):
        source = [product, untyped][owner[g]]
        assert np.allclose(expression[gene], source.expression[gene], atol=1e-5)
        assert combined.truth["genes"][gene]["part"] == owner[g]
        causal = set(source.truth["genes"][gene]["causal"])
        typed = set(bim[1][bim[1].str.startswith(gene + "_")])
        # The untyped architecture's causal variants are missing from the files, the other's are there.
        assert (causal & typed) == (set() if owner[g] == 1 else causal)
