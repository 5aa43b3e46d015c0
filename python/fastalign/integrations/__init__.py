"""Adapters that let existing trainers and models use fastalign without forking them.

- :mod:`fastalign.integrations.trl`: TRL's trainers (DPO, KTO, GRPO, SFT, RLOO, ...) compute
  their log-probs through fastalign's fused LM-head primitive.
- :mod:`fastalign.integrations.hf`: per-sequence log-probs of any transformers causal LM,
  straight from the backbone's hidden states (no ``[tokens, vocab]`` logits).

Each submodule imports torch (and TRL / transformers) only when it is imported itself.
"""
