"""Build a random-weight CLIP folder that sentence-transformers 6 loads like `clip-ViT-B-32`.

No CLIP weights can be downloaded here, but the *speed* of the CLIP code path does not depend on
the weight values: a random-weight model with the ViT-B/32 shapes (transformers `CLIPConfig`
defaults: vision 768 hidden / 12 layers / patch 32 / 224 px, text 512 hidden / 12 layers / 77
positions / 49,408 vocabulary, projection 512) costs the same FLOPs as the real one.

Layout: a Hugging Face CLIP folder (`config.json`, `model.safetensors`, `preprocessor_config.json`,
`tokenizer.json` / `vocab.json` / `merges.txt`), which `SentenceTransformer(folder)` - and so our
`ClipEncoder(folder)` - loads as a CLIP model (same layout the tests' `tiny_clip_dir` uses).

The tokenizer: the real CLIP BPE vocabulary is not available either, and a character-level
vocabulary would make every word ~5 tokens (5x the text-encoder work of real CLIP). So the
builder learns a word-level BPE for the words it is given (every listed word becomes one token,
as common English words are in real CLIP); other words fall back to characters. The vocabulary
is padded to 49,408 entries with `<|startoftext|>` = 49406 and `<|endoftext|>` = 49407, as in CLIP.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable
from pathlib import Path

VOCAB_SIZE = 49_408
BOS, EOS = "<|startoftext|>", "<|endoftext|>"

#: sizes: "vit-b-32" = transformers CLIPConfig defaults (ViT-B/32); "tiny" for smoke tests
SIZES = {
    "vit-b-32": {"text_config": {}, "vision_config": {}, "projection_dim": 512},
    "tiny": {
        "text_config": {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2, "num_hidden_layers": 2},
        "vision_config": {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_attention_heads": 2,
            "num_hidden_layers": 2,
        },
        "projection_dim": 32,
    },
}

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte -> printable unicode character table (the base alphabet of byte-level BPE)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def _bpe(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Standard CLIP/GPT-2 BPE: repeatedly merge the lowest-ranked adjacent pair."""
    while len(symbols) > 1:
        pairs = [(ranks.get((a, b)), i) for i, (a, b) in enumerate(itertools.pairwise(symbols))]
        best = min((r for r, _ in pairs if r is not None), default=None)
        if best is None:
            return symbols
        pair = next((symbols[i], symbols[i + 1]) for r, i in pairs if r == best)
        merged, i = [], 0
        while i < len(symbols):
            if i < len(symbols) - 1 and (symbols[i], symbols[i + 1]) == pair:
                merged.append(symbols[i] + symbols[i + 1])
                i += 2
            else:
                merged.append(symbols[i])
                i += 1
        symbols = merged
    return symbols


def word_level_bpe(words: Iterable[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary and merges under which every given (lower-case, ASCII-letter) word is one token."""
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars]
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in sorted(set(words)):
        if not word.isascii() or not word.isalpha():
            continue
        while True:  # adding merges at the end never changes how earlier words split
            symbols = _bpe([*word[:-1], word[-1] + "</w>"], ranks)
            if len(symbols) == 1:
                break
            pair = (symbols[0], symbols[1])
            ranks[pair] = len(merges)
            merges.append(pair)
            tokens.append(pair[0] + pair[1])
    tokens = list(dict.fromkeys(tokens))
    if len(tokens) > VOCAB_SIZE - 2:
        raise ValueError(f"too many words for a {VOCAB_SIZE}-entry vocabulary")
    tokens += [f"<|unused{i}|>" for i in range(VOCAB_SIZE - 2 - len(tokens))]
    tokens += [BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}, merges


def words_of(texts: Iterable[str]) -> set[str]:
    return {w.lower() for t in texts for w in _WORD.findall(t)}


def build_clip_dir(out: Path, words: Iterable[str], size: str = "vit-b-32", seed: int = 0) -> Path:
    """Write a random-weight CLIP model + processor into `out` (created); returns `out`."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    out.mkdir(parents=True, exist_ok=True)
    vocab, merges = word_level_bpe(words)
    (out / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    spec = SIZES[size]
    config = CLIPConfig(
        text_config={
            **spec["text_config"],
            "vocab_size": VOCAB_SIZE,
            "max_position_embeddings": 77,
            "bos_token_id": vocab[BOS],
            "eos_token_id": vocab[EOS],
            "pad_token_id": vocab[EOS],
        },
        vision_config={**spec["vision_config"], "image_size": 224, "patch_size": 32},
        projection_dim=spec["projection_dim"],
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer)  # defaults = CLIP's 224 px
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
