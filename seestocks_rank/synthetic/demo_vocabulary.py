"""The demo catalog's vocabulary, read from ``demo_vocabulary.json`` beside this module.

- ``TAXONOMY``: the Google-style slice, ``(id, path)`` with parents before children
- ``VOCAB``: per category (keyed by taxonomy node name): brands (or models: brand -> model names), product
  nouns, attribute slots ``a``, a title template and the median offer price in EUR
- ``CONFUSIONS``: where a category's products get mis-tagged (page name -> the pages they land on)
- ``NEAR_TYPES``: (page, true category) pairs judged 2, a near type or an accessory that belongs on the page
- ``MID_PAGES``: inner-node pages; ``RETAILERS``; ``TOKEN_SUBS``, ``EXTRAS``: how retailers reword titles;
  ``DESCRIPTIONS``: description templates
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

_DATA: dict[str, Any] = json.loads(files(__package__).joinpath("demo_vocabulary.json").read_text("utf-8"))

TAXONOMY: tuple[tuple[int, str], ...] = tuple((int(i), str(path)) for i, path in _DATA["taxonomy"])
VOCAB: dict[str, dict[str, Any]] = _DATA["vocab"]
CONFUSIONS: dict[str, tuple[str, ...]] = {page: tuple(to) for page, to in _DATA["confusions"].items()}
NEAR_TYPES: frozenset[tuple[str, str]] = frozenset((page, true) for page, true in _DATA["near_types"])
MID_PAGES: tuple[str, ...] = tuple(_DATA["mid_pages"])
RETAILERS: tuple[str, ...] = tuple(_DATA["retailers"])
TOKEN_SUBS: dict[str, tuple[str, ...]] = {token: tuple(subs) for token, subs in _DATA["token_subs"].items()}
EXTRAS: tuple[str, ...] = tuple(_DATA["extras"])
DESCRIPTIONS: tuple[str, ...] = tuple(_DATA["descriptions"])
