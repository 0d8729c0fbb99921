"""Package data: the standard library of .arch templates, installed as `sparsemod_dsl.stdlib`."""
