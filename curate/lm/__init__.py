"""Talking to a local causal LM: chat-template rendering with assistant-token spans, and token-level losses.

Shared by training (sft), scoring (IFD, perplexity) and evaluation, so the three agree on which
tokens are the answer.
"""
