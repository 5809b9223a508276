"""Metric-learning losses: torch ``nn.Module``s called as ``loss(embeddings, labels)``."""
