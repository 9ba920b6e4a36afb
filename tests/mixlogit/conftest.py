import jax

# The accuracy tests compare float64 results; the library itself never flips this flag.
jax.config.update("jax_enable_x64", True)
