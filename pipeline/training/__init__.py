"""What serves the training stages: models and tokenizers, SFT data and rendering, TRL setup, guardrails."""
