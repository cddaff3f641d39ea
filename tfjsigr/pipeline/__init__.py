"""The pipeline: recipes (TOML) parsed once, training runs into run folders with resumable
checkpoints, and the demo. The zoo build (`tfjsigr.zoo.build`) runs recipes through it."""
