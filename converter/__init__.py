"""Ahead-of-time conversion: model sources, export, compression, lowering, validation."""
