"""Rate AI-generated media PG, PG13, R, X or XXX with experts, a voter and a multimodal MLP.

Pure ML: no Django anywhere in this package. The surface the moderation app uses:
`Bundle.load`, `Bundle.predict`, `train_bundle`, `evaluate_bundle`.
"""

__version__ = "0.1.0"
