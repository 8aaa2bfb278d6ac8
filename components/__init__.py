"""KFP v2 components: one folder per step, each a thin adapter over `textclf.steps`."""
