"""Explanation benchmark: textclf's occlusion (on each backend) against Captum's LayerIntegratedGradients on the
word embeddings (PyTorch, fp32), on the same fine-tuned model and the same SST-2 dev sentences.

    make bench-explain          # or: python benchmarks/bench_explain.py [--model DIR] [--texts 200]

Faithfulness (a deletion test): for each sentence, the explained label's probability falls by how much when the
k words with the highest attribution are deleted, against k words drawn at random (the same draw for every
method); k = 1 and 3, means over the sample. Cost: median milliseconds to explain one 20-word text. Model: as
`make bench-serve` (its cached SST-2 model, trained once), or --model. Prints a table and writes
benchmarks/results/bench_explain.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import DATA, TWENTY_WORDS, require_data, trained_model
from tables import parse_arguments, record

from textclf.data.cleaning import clean_texts
from textclf.serve.classifier import TextClassifier
from textclf.serve.explain import without_span, word_spans

K_VALUES = (1, 3)
LIG_STEPS = 32


def integrated_gradients(model_dir: Path) -> Callable[[str], tuple[int, np.ndarray]]:
    """Captum's LayerIntegratedGradients on the word embeddings against an all-[PAD] baseline (special tokens
    kept), token attributions summed into the words they came from: (label index, one attribution per word)."""
    import torch
    from captum.attr import LayerIntegratedGradients
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from textclf.registry.model_dir import ModelDirectory

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    metadata = ModelDirectory(model_dir).metadata()

    def probabilities(input_ids, attention_mask):
        return torch.softmax(
            model(input_ids=input_ids, attention_mask=attention_mask).logits / metadata.temperature, -1
        )

    lig = LayerIntegratedGradients(probabilities, model.get_input_embeddings())

    def explain(text: str) -> tuple[int, np.ndarray]:
        encoded = tokenizer(
            text, return_offsets_mapping=True, truncation=True, max_length=metadata.max_length, return_tensors="pt"
        )
        ids, mask = encoded["input_ids"], encoded["attention_mask"]
        with torch.no_grad():
            label = int(probabilities(ids, mask)[0].argmax())
        special = torch.tensor(tokenizer.get_special_tokens_mask(ids[0].tolist(), already_has_special_tokens=True))
        baseline = torch.where(special.bool(), ids[0], tokenizer.pad_token_id).unsqueeze(0)
        attributions = lig.attribute(
            ids, baselines=baseline, additional_forward_args=(mask,), target=label, n_steps=LIG_STEPS
        )
        per_token = attributions.sum(dim=-1)[0].detach().numpy()
        offsets = encoded["offset_mapping"][0].tolist()
        words = np.zeros(len(word_spans(text)))
        for index, (start, end) in enumerate(word_spans(text)):
            words[index] = sum(
                value
                for value, (token_start, token_end) in zip(per_token, offsets, strict=True)
                if token_end > token_start and token_start >= start and token_end <= end
            )
        return label, words

    return explain


def delete_words(text: str, indices) -> str:
    spans = word_spans(text)
    for index in sorted(indices, key=lambda i: -spans[i][0]):
        text = without_span(text, *spans[index])
    return text


def faithfulness(
    explain: Callable[[str], tuple[int, np.ndarray]], classifier: TextClassifier, texts: list[str], seed: int
) -> dict:
    rng = np.random.default_rng(seed)
    drops = {k: {"top": [], "random": []} for k in K_VALUES}
    for text in texts:
        label, attributions = explain(text)
        order = np.argsort(-attributions)
        variants, kinds = [text], []
        for k in K_VALUES:
            variants += [delete_words(text, order[:k]), delete_words(text, rng.choice(len(order), k, replace=False))]
            kinds += [(k, "top"), (k, "random")]
        probabilities = classifier.predict(variants).probabilities[:, label]
        for (k, kind), probability in zip(kinds, probabilities[1:], strict=True):
            drops[k][kind].append(float(probabilities[0] - probability))
    return {
        f"k{k}": {kind: round(float(np.mean(values)), 4) for kind, values in by_kind.items()}
        for k, by_kind in drops.items()
    }


def cost_ms(explain: Callable[[str], object], repeats: int = 20) -> float:
    explain(TWENTY_WORDS)
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        explain(TWENTY_WORDS)
        timings.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(timings), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a textclf model directory (default: bench-serve's SST-2 model)")
    parser.add_argument("--texts", type=int, default=200, help="SST-2 dev sentences of at least 6 words")
    args = parse_arguments(parser, "bench_explain")
    require_data()
    import pandas as pd

    model = args.model or trained_model()
    classifier = TextClassifier.load(model)
    sentences = pd.read_csv(DATA / "dev.csv")["text"].tolist()
    texts = [text for text in clean_texts(sentences, classifier.cleaning) if len(text.split()) >= 6]
    texts = texts[: args.texts]

    def occlusion_on(backend: str) -> Callable[[str], tuple[int, np.ndarray]]:
        explaining = TextClassifier.load(model, backend=backend)

        def explain(text: str) -> tuple[int, np.ndarray]:
            [explanation] = explaining.explain([text])
            return explaining.labels.index(explanation.label), np.array([w.attribution for w in explanation.words])

        return explain

    methods = {f"occlusion, {backend}": occlusion_on(backend) for backend in ("torch", "onnx", "onnx-int8")}
    methods[f"integrated gradients ({LIG_STEPS} steps), torch fp32"] = integrated_gradients(model)
    results = {}
    for name, explain in methods.items():
        print(f"measuring {name}")
        results[name] = {"ms_per_20_word_text": cost_ms(explain), **faithfulness(explain, classifier, texts, seed=0)}
    report = {"model": str(model), "texts": len(texts), "data": "SST-2 dev, at least 6 words", "methods": results}
    record("bench_explain", report, args.publish)


if __name__ == "__main__":
    main()
