"""CLI sub-commands; each module defines ``register(app)``. Keep them thin: parse, call the library, print."""
