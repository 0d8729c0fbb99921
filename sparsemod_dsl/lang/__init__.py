"""The language: `.arch` text to a checked program IR.

grammar -> `parser` (syntax tree, `syntax`) -> `loader` (imports) -> `lower` (IR, `ir`)
-> `check` (with `infer`, `layers`, `shapes`); `compiler` runs them in one call and
`fmt` prints a syntax tree back as canonical text. Nothing here imports torch or Ax,
nor anything from `nets` or `search`.
"""
