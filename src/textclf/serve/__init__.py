"""The serve stage, free of KServe: the loaded classifier (cleaning, tokenization and the forward pass
together), dynamic micro-batching, and the input rules every protocol applies. `serving/` is the KServe
adapter over it."""
