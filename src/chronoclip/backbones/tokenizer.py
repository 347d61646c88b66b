"""A small CLIP BPE tokenizer built offline, for random-init presets (``tiny``, real-size configs).

Real checkpoints ship their own ``vocab.json`` / ``merges.txt`` (or ``tokenizer.json``). Presets
without weights need a tokenizer too, and nothing may be downloaded, so this one is built in code:
CLIP's 256 byte-level base symbols (each also in its end-of-word form), the two special tokens, and
merges that make each word of a small English word list one token. Any text still tokenizes:
unknown words fall back to sub-words and single characters.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from functools import lru_cache
from pathlib import Path

import transformers
from transformers import PreTrainedTokenizerBase

START, END = "<|startoftext|>", "<|endoftext|>"

#: Words that become single tokens: function words, caption vocabulary, colours, shapes, sizes,
#: positions, motion and time words, and the nouns of the synthetic worlds' captions.
WORDS: tuple[str, ...] = tuple("""
a an the of on in at to and or with without is are was be there this that it its one two three
photo picture image video clip drawing sketch painting render scene frame shot view example
red green blue yellow purple orange white black grey gray brown pink dark light bright pale
circle disc round blob square box block triangle wedge diamond rhombus cross plus sign star starburst
ring hoop donut hexagon six sided tile crescent moon heart love shape object thing
small medium large big tiny huge left right top bottom centre center middle side corner next
moving move moves slides sliding growing grows shrinking shrinks rotating rotates turning spinning
clockwise anticlockwise counterclockwise fading appears disappears bouncing still static up down
background plain stripes striped dots dotted checker checkered noise noisy textured
spore spores hyphae mycelium culture growth stage early late day hour hours time after before
incubated temperature degrees warm cold sound tone click flash person doing
""".split())


def _byte_symbols() -> list[str]:
    """CLIP's byte-to-unicode table: 256 printable symbols, one per byte value (GPT-2 / CLIP BPE)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    symbols, extra = [], 0
    for byte in range(256):
        if byte in printable:
            symbols.append(chr(byte))
        else:
            symbols.append(chr(256 + extra))
            extra += 1
    return symbols


def _apply_merges(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """The pieces byte-pair encoding leaves of ``word`` (ASCII) under ``ranks``: lowest rank merges first."""
    pieces = [*word[:-1], word[-1] + "</w>"]
    while len(pieces) > 1:
        pairs = [(ranks.get(pair, len(ranks)), i) for i, pair in enumerate(itertools.pairwise(pieces))]
        rank, i = min(pairs)
        if rank == len(ranks):
            break
        pieces[i:i + 2] = [pieces[i] + pieces[i + 1]]
    return pieces


@lru_cache(maxsize=1)
def vocabulary() -> tuple[dict[str, int], list[str]]:
    """The token → id map and the ordered merges of the built-in tokenizer (deterministic).

    For each word, merges are appended until byte-pair encoding under all merges so far yields the
    word as one token. Later merges rank lower, so they never change how an earlier word is split.
    """
    base = _byte_symbols()
    tokens = base + [s + "</w>" for s in base]
    known = set(tokens)
    ranks: dict[tuple[str, str], int] = {}
    for word in sorted(set(WORDS)):
        while len(pieces := _apply_merges(word, ranks)) > 1:
            ranks[(pieces[0], pieces[1])] = len(ranks)
            if (merged := pieces[0] + pieces[1]) not in known:
                known.add(merged)
                tokens.append(merged)
    tokens += [START, END]
    merges = [f"{a} {b}" for a, b in ranks]  # dicts keep insertion (= rank) order
    return {token: index for index, token in enumerate(tokens)}, merges


def write_vocabulary(folder: Path) -> None:
    """Write :func:`vocabulary` as CLIP's ``vocab.json`` + ``merges.txt`` into ``folder``."""
    vocab, merges = vocabulary()
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("\n".join(["#version: 0.2", *merges]) + "\n", encoding="utf-8")


def builtin_tokenizer(context_length: int) -> PreTrainedTokenizerBase:
    """A CLIP tokenizer over :func:`vocabulary` with ``model_max_length = context_length``.

    It is loaded from files written to a temporary folder, the path real checkpoints take; that works
    alike in transformers 4 (whose ``CLIPTokenizer`` only takes file paths) and 5.
    """
    tokenizer_class = getattr(transformers, "CLIPTokenizerFast", None) or transformers.CLIPTokenizer
    with tempfile.TemporaryDirectory(prefix="chronoclip-tokenizer-") as folder:
        write_vocabulary(Path(folder))
        return tokenizer_class.from_pretrained(folder, model_max_length=context_length)


def builtin_vocab_size() -> int:
    """Number of tokens of the built-in tokenizer (a text config's ``vocab_size`` must be at least this)."""
    return len(vocabulary()[0])
