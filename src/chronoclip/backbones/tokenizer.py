"""A small CLIP BPE tokenizer built offline, for random-init presets (``tiny``, real-size configs).

Real checkpoints ship their own ``vocab.json`` / ``merges.txt`` (or ``tokenizer.json``). Presets
without weights need a tokenizer too, and nothing may be downloaded, so this one is built in code:
CLIP's 256 byte-level base symbols (each also in its end-of-word form), the two special tokens, and
merges that make each word of a small English word list one token. Any text still tokenizes:
unknown words fall back to sub-words and single characters.
"""

from __future__ import annotations

from functools import lru_cache

from transformers import CLIPTokenizer

START, END = "<|startoftext|>", "<|endoftext|>"

#: Words that become single tokens: function words, caption vocabulary, colours, shapes, sizes,
#: positions, motion and time words. Generic English, no data-set knowledge.
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


@lru_cache(maxsize=1)
def vocabulary() -> tuple[dict[str, int], list[str]]:
    """The token → id map and the ordered merges of the built-in tokenizer (deterministic)."""
    base = _byte_symbols()
    tokens = base + [s + "</w>" for s in base]
    merges: list[str] = []
    known = set(tokens)
    for word in sorted(set(WORDS)):
        pieces = [*word[:-1], word[-1] + "</w>"]
        while len(pieces) > 1:
            merged = pieces[0] + pieces[1]
            rule = f"{pieces[0]} {pieces[1]}"
            if merged not in known:
                known.add(merged)
                tokens.append(merged)
                merges.append(rule)
            elif rule not in merges:
                merges.append(rule)
            pieces = [merged, *pieces[2:]]
    tokens += [START, END]
    return {token: index for index, token in enumerate(tokens)}, merges


def builtin_tokenizer(context_length: int) -> CLIPTokenizer:
    """A CLIP tokenizer over :func:`vocabulary`, padding and truncating to ``context_length``."""
    vocab, merges = vocabulary()
    pairs = [tuple(rule.split(" ")) for rule in merges]
    return CLIPTokenizer(vocab=dict(vocab), merges=pairs, model_max_length=context_length)


def builtin_vocab_size() -> int:
    """Number of tokens of the built-in tokenizer (the text config's ``vocab_size`` must be at least this)."""
    return len(vocabulary()[0])
