"""tfnet-networks: `python -m tfnet_jax.networks out=DIR gene_info=FILE string=... gmt=[a,b] ...`
(`tfnet_jax.data.sources.build.build_networks`)."""
from __future__ import annotations

from tfnet_jax.cli import Command, key_value_args, plain_command
from tfnet_jax.data.sources.build import build_networks
from tfnet_jax.data.sources.options import KEYS

NETWORKS = Command(
    name="tfnet-networks",
    usage="out=DIR [gene_info=FILE] [ids=entrez|symbol|ensembl] [taxon=9606] SOURCE=FILE ...",
    summary=("Build a data directory's network layers (OUT/networks/<layer>.tsv.gz, for data=dir) "
             "from public resources: string= (with string_info=, string_aliases=, "
             "string_min_score=700, string_channels=[combined]), biogrid=, corum=, "
             "gmt=[a.gmt,b.gmt] (gmt_max_size=300), reactome= (NCBI2Reactome.txt), pathways= "
             "(gene, pathway table), coexpression= (h5ad or CSV; coexpression_top_k=20), go= with "
             "obo= (go_aspects=[BP,MF,CC], go_evidence_exclude=[ND], go_top_k=20, "
             "go_features=false). Genes are mapped through NCBI gene_info. Writes "
             "OUT/networks/report.json (rows kept and dropped, IDs mapped) and logs it."),
    example=("tfnet-networks out=data/my_screen gene_info=Homo_sapiens.gene_info.gz "
             "string=9606.protein.links.v12.0.txt.gz string_info=9606.protein.info.v12.0.txt.gz "
             "gmt=[h.all.v2023.2.Hs.symbols.gmt]"),
)


@plain_command(NETWORKS)
def main(argv: list[str]) -> None:
    build_networks(**key_value_args(argv, allowed=KEYS, required=("out",)))


if __name__ == "__main__":
    main()
