"""How much ``tiny-world`` knows of the synthetic universe, against the random-init ``tiny`` (chance).

Fresh images (a seed never used for pretraining), rendered at the ``captions`` world's 64 px:

- zero-shot top1 per rendering style for shape (10 classes), colour (8) and shape+colour (80) prompts —
  ``source`` is the pretraining style, the others are the shifted styles domain adaptation must close;
- text→image and image→text R@1 / R@5 on captioned source-style scenes.

Run: ``python benchmarks/worldclip.py [--n 400] [--retrieval 500] [--seed 20261123] [--json FILE]``
"""

from __future__ import annotations

import argparse
import json
import time

CHANCE = {"shape": 100 / 10, "colour": 100 / 8, "shape+colour": 100 / 80}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="one-object images per style")
    parser.add_argument("--retrieval", type=int, default=500, help="captioned scenes for retrieval")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--backbones", nargs="+", default=["tiny-world", "tiny"])
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    from chronoclip.backbones import load_backbone
    from chronoclip.data.worlds.universe import STYLES
    from chronoclip.eval.worldclip import universe_retrieval, universe_zero_shot

    results = {}
    for spec in args.backbones:
        started = time.perf_counter()
        backbone = load_backbone(spec)
        results[spec] = {"zero_shot": universe_zero_shot(backbone, n=args.n, seed=args.seed),
                         "retrieval": {k: v for k, v in universe_retrieval(backbone, args.retrieval, args.seed).items()
                                       if k != "protocol"},
                         "seconds": time.perf_counter() - started}

    first, base = args.backbones[0], args.backbones[-1]
    print(f"zero-shot top1 (%), {args.n} fresh one-object images per style; chance: "
          + ", ".join(f"{k} {v:.1f}" for k, v in CHANCE.items()))
    header = f"| style | task | {' | '.join(args.backbones)} | {first} − {base} |"
    print(header + "\n|" + "---|" * (header.count("|") - 1))
    for style in STYLES:
        for task in CHANCE:
            values = [results[b]["zero_shot"][style][task] for b in args.backbones]
            cells = " | ".join(f"{v:.1f}" for v in values)
            print(f"| {style} | {task} | {cells} | {values[0] - values[-1]:+.1f} |")
    print(f"\nretrieval on {args.retrieval} fresh captioned scenes (%)")
    print(f"| metric | {' | '.join(args.backbones)} |\n|---|" + "---|" * len(args.backbones))
    for key in ("t2i_R@1", "t2i_R@5", "i2t_R@1", "i2t_R@5"):
        print(f"| {key} | " + " | ".join(f"{results[b]['retrieval'][key]:.1f}" for b in args.backbones) + " |")
    source = results[first]["zero_shot"]["source"]["shape+colour"]
    shifted = {s: results[first]["zero_shot"][s]["shape+colour"] for s in STYLES if s != "source"}
    print(f"\n{first}: shape+colour source {source:.1f} vs shifted "
          + ", ".join(f"{s} {v:.1f}" for s, v in shifted.items())
          + f"; source / {base} = {source / max(results[base]['zero_shot']['source']['shape+colour'], 1e-9):.1f}x")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
