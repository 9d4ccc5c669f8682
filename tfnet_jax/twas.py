"""TWAS stage 2 (`tfnet_jax.analysis.twas`): `python -m tfnet_jax.twas run_dir=RUN [trait=FILE] [top=10]`."""
from __future__ import annotations

import logging

from tfnet_jax.analysis.twas import associate
from tfnet_jax.cli import Command, key_value_args, plain_command
from tfnet_jax.errors import ConfigError

log = logging.getLogger(__name__)

TWAS = Command(
    name="tfnet-twas",
    usage="run_dir=RUN [trait=FILE] [top=10]",
    summary=("TWAS stage 2 for a finished model=genonet run: apply its stage-1 weights "
             "(RUN/weights.csv) to the genotypes and test each gene's predicted expression "
             "against a trait (a table IID, trait; simulated runs default to their own trait). "
             "Writes RUN/twas.csv sorted by |z| and logs the top genes."),
    example="tfnet-twas run_dir=outputs/runs/model=genonet trait=trait.csv top=20",
)


@plain_command(TWAS)
def main(argv: list[str]) -> None:
    args = key_value_args(argv, allowed=("run_dir", "trait", "top"), required=("run_dir",))
    top = args.get("top", "10")
    if not top.isdigit():
        raise ConfigError(f"top={top!r}: expected a whole number of genes to show")
    frame = associate(args["run_dir"], args.get("trait"))
    log.info("%s", frame.head(int(top)).to_string(index=False))
    if "is_trait_gene" in frame:
        ranks = frame.loc[frame["is_trait_gene"], "rank"].tolist()
        log.info("true trait genes rank %s of %d", ranks, len(frame))


if __name__ == "__main__":
    main()
