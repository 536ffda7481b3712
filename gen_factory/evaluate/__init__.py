"""Quality measures of generated data against the real data it imitates.

Import the module you need (`evaluate.tables`, `evaluate.images`, ...): nothing is imported here, so a
Ray Train worker that only needs the Fréchet distance does not pay for SciPy's statistics (~2 s).
"""
