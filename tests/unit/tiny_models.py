"""A tiny random-initialised BERT cross-encoder for unit tests (no weights to load)."""

from __future__ import annotations

import re
from pathlib import Path

from seestocks_rank.models.cross_encoder import CrossEncoder

CONTEXTS = ["cordless drill", "pvc pipe 1/2 in", "white paint", "led light bulb", "garden hose", "door lock"]
TITLES = [
    "cordless drill with bit set",
    "1/2 in. x 10 ft. pvc pipe",
    "white paint 1 gal",
    "led light bulb 4 pack",
    "garden hose 50 ft",
    "door lock with key and hinge screw",
    "oak floor tile",
    "hammer",
    "copper pipe valve for kitchen sink faucet in bath",
    "ladder 3 step",
]


def tiny_cross_encoder(folder: Path, seed: int = 0) -> CrossEncoder:
    """A 2-layer, 64-wide BERT over the words of CONTEXTS and TITLES, with a fresh linear head."""
    import torch
    import transformers

    words = sorted({w for text in CONTEXTS + TITLES for w in re.findall(r"\w+|[^\w\s]", text)})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=64,
    )
    encoder = transformers.BertModel(config).eval()
    head = torch.nn.Linear(config.hidden_size, 1)
    return CrossEncoder(encoder, tokenizer, head, max_length=32, device="cpu", version="tiny", base="tiny")
