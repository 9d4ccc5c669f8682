"""What setup.cfg cannot say: the top-level configs/ (the only copy) ships inside the package.

`find:` in setup.cfg cannot add a package that lives outside tfnet_jax/, so the package list
and the configs/ -> tfnet_jax/configs mapping are here; tfnet_jax.cli.CONFIG_DIR finds it
there in a wheel or `pip install .`, and beside the package in a checkout or editable install.
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["tfnet_jax", "tfnet_jax.*"]) + ["tfnet_jax.configs"],
    package_dir={"tfnet_jax.configs": "configs"},
    # gat_cpu.cc: the fused CPU graph-attention kernel, compiled at first use (graph/cpu_kernel.py).
    package_data={"tfnet_jax.configs": ["**/*.yaml"], "tfnet_jax.graph": ["*.cc"]},
)
