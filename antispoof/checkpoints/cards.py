"""Model cards: what a detector was trained on and how well it does on real-world speech, from the registry.

    card = model_card("aasist")       # a registry name, or a checkpoint path whose file name is in it
    lines = card_lines(card)          # plain sentences for the app and score.py
    name, why = best_local_detector() # the default detector of score.py and the app

Facts come from registry.json: `training_data`, `languages`, `published_eer`, `license` and `itw_eer`
({"percent", "source"}: the published In-the-Wild EER, the real-world benchmark). An entry without some of
them (a new detector, a checkpoint given by path) gets a card that says what is not known.
"""

from __future__ import annotations

from pathlib import Path

from antispoof.checkpoints.registry import REGISTRY, resolve_checkpoint, sha256sum

FALLBACK = "aasist"  # ships with the repository: always there, but weak on real-world speech


def registry_name(spec: str) -> str | None:
    """The registry name of a checkpoint spec: the name itself, the entry whose file name it has, or the
    entry whose published file it is byte for byte (size, then sha256: a renamed copy keeps its card)."""
    if spec.lower() in REGISTRY:
        return spec.lower()
    path = Path(spec)
    named = next((key for key, entry in REGISTRY.items() if entry.get("filename") == path.name), None)
    if named or not path.is_file():
        return named
    size = path.stat().st_size
    for key, entry in REGISTRY.items():
        if entry.get("size") == size and entry.get("sha256") and sha256sum(path) == entry["sha256"]:
            return key
    return None


def model_card(spec: str) -> dict:
    """The card of a registry name or a checkpoint path; keys are None where nothing is published."""
    name = registry_name(spec)
    entry = REGISTRY.get(name, {}) if name else {}
    itw = entry.get("itw_eer") or {}
    return {
        "name": name or Path(spec).name,
        "in_registry": name is not None,
        "description": entry.get("description"),
        "trained_on": entry.get("training_data"),
        "languages": entry.get("languages"),
        "published_eer": entry.get("published_eer"),
        "itw_eer_percent": itw.get("percent"),
        "itw_eer_source": itw.get("source"),
        "license": entry.get("license"),
    }


def itw_sentence(card: dict) -> str:
    """The In-the-Wild EER in plain words."""
    if card["itw_eer_percent"] is None:
        return (
            "Its error rate on real-world recordings (the In-the-Wild benchmark) is not published: how well "
            "it does outside its training data is unknown."
        )
    wrong = card["itw_eer_percent"]
    return (
        f"On real-world recordings (the In-the-Wild benchmark) this detector is wrong about {wrong:.0f} "
        f"times in 100 at its best threshold (equal error rate {wrong:g} %, {card['itw_eer_source']})."
        + (" That is close to a coin flip." if wrong >= 30 else "")
    )


def card_lines(card: dict) -> list[str]:
    """The card as short sentences, most important first."""
    if not card["in_registry"]:
        return [
            f"{card['name']} is a checkpoint given by path, not a published detector: what it was trained on "
            "and how well it does on real-world speech are whatever its training run says (its run folder).",
        ]
    lines = [itw_sentence(card)]
    if card["trained_on"]:
        lang = f"; language: {card['languages']}" if card["languages"] else ""
        lines.append(f"Trained on {card['trained_on']}{lang}.")
    if card["published_eer"]:
        lines.append(f"Published equal error rates: {card['published_eer']}.")
    if card["license"]:
        lines.append(f"License: {card['license']}.")
    return lines


def is_local(name: str) -> bool:
    """True when a registry detector's file is already here (nothing is downloaded to find out)."""
    try:
        return Path(resolve_checkpoint(name, download=False)).exists()
    except (FileNotFoundError, RuntimeError, ValueError, OSError):
        return False


def best_local_detector() -> tuple[str, str]:
    """(registry name, why) of the strongest detector present locally, by published In-the-Wild EER; AASIST
    (which ships with the repository) when no detector with a published real-world number is here."""
    ranked = sorted(
        (entry["itw_eer"]["percent"], name)
        for name, entry in REGISTRY.items()
        if entry.get("detector") and (entry.get("itw_eer") or {}).get("percent") is not None
    )
    for percent, name in ranked:
        if name != FALLBACK and is_local(name):
            return (
                name,
                f"{name}: the detector here with the lowest published In-the-Wild error rate ({percent:g} %)",
            )
    percent = (REGISTRY[FALLBACK].get("itw_eer") or {}).get("percent")
    return FALLBACK, (
        f"{FALLBACK}: it ships with the code and no stronger detector is downloaded. WARNING: on "
        f"real-world recordings it is wrong about {percent:g} times in 100 (`python download.py --list` "
        "names stronger ones)"
    )
