"""Analyses of trained models: light-up, core TFs, disease fold-changes (TFNet), TWAS stage 2
(GenoNet). Each `run_*` function takes a loaded run (`tfnet_jax.load_run`) and writes its
outputs atomically into the run dir."""
from tfnet_jax.errors import RunDirError


def require_family(run, family: str) -> None:
    """A one-line error when `run` (a tfnet_jax.Run) is not of `family`."""
    if run.family.name != family:
        raise RunDirError(f"run_dir={run.run_dir}: a {run.family.name} run; this needs a {family} run")
