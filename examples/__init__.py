"""Ports of the seed documents' Keras examples to cadence (only imports and model construction changed)."""
