"""Pre-training data for the trainer.

Tokenizers, sources (built-in corpus, files, Hugging Face), synthetic tasks, token shards and
the deterministic, resumable window sampler.
"""
