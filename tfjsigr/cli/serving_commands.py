"""Commands of the tfjsigr CLI (placeholder until filled in)."""
