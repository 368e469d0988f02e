"""Combining experts: the majority voter and the multimodal MLP."""
