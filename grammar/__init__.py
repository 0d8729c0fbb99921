"""Package data: the .arch grammar (`arch.lark`), installed as `sparsemod_dsl.grammar`."""
