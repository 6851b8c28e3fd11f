"""Detection benchmark: score detector results against a labelled world; the volume-threshold baseline."""
