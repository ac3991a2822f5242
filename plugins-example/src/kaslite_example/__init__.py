"""kaslite-example: a dataset (checkerboard), a growth policy (gap-aware) and a blueprint (lowrank)."""
