"""`python -m tfnet_jax.train`: the training entry point (see tfnet_jax/run.py)."""
from tfnet_jax.run import main

if __name__ == "__main__":
    main()
