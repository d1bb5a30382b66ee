"""Judges turn a response into a Verdict. ``deterministic`` reads the ANSWER line; LLM judges come later."""
