"""The train stage: the model (base encoder, classification head, LoRA, merge), the trainer (Hugging Face
Trainer with early stopping and MLflow per-epoch metrics), and tuning (Optuna over the same trainer)."""
