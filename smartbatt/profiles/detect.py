"""Choose a chip profile from what a gauge says about itself.

Device-agnostic: the caller passes small callables that read DeviceName (0x21),
ManufacturerName (0x20) and — only when the caller allows a ManufacturerAccess write — the MAC
DeviceType (0x0001). Nothing here touches a bus, so the driver, the emulator tests and the GUI can
plug in whatever transport they own.

Rules (the issue: "detection falls back gracefully instead of guessing"):

* Generic SBS mode is the answer whenever the evidence is missing, ambiguous or contradictory, and
  every answer carries a one-sentence ``reason``.
* A ManufacturerAccess write is sent only if ``allow_mac`` is true; a clone or a non-TI pack may
  treat such a write as something else entirely.
* DeviceType is a hardware fact and wins over DeviceName, which pack makers rename freely. A
  DeviceType that no profile knows means "not a chip we know" — a matching DeviceName does not
  overrule it (clones copy names).
* Without DeviceType, a DeviceName that matches exactly one profile selects it, marked
  ``confirmed=False``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from smartbatt.errors import SmartBattError
from smartbatt.profiles.loader import available_profiles, load_profile
from smartbatt.profiles.schema import Profile

__all__ = ["Detection", "detect_profile"]

#: profile used when nothing else is known.
GENERIC = "generic-sbs"


@dataclass(frozen=True)
class Detection:
    """The chosen profile and why."""

    profile: str
    #: variant (``"R3"``) when the DeviceName names one, else None.
    variant: str | None
    #: one readable sentence: the evidence and the decision.
    reason: str
    #: identified by DeviceType (a hardware fact), not only by a name.
    confirmed: bool
    device_type: int | None = None
    device_name: str | None = None
    manufacturer: str | None = None

    @property
    def is_generic(self) -> bool:
        return self.profile == GENERIC


def detect_profile(
    read_device_name: Callable[[], str] | None,
    read_manufacturer_name: Callable[[], str] | None = None,
    read_device_type: Callable[[], int] | None = None,
    *,
    allow_mac: bool = False,
    profiles: Sequence[Profile] | None = None,
) -> Detection:
    """Pick a profile.

    :param read_device_name: returns DeviceName (0x21); may raise a :class:`SmartBattError`.
    :param read_manufacturer_name: returns ManufacturerName (0x20); a hint for the reason only.
    :param read_device_type: returns MAC DeviceType (0x0001); called only if ``allow_mac``.
    :param allow_mac: the caller permits a ManufacturerAccess write.
    :param profiles: candidates; defaults to every shipped profile.
    :returns: a :class:`Detection`; never raises for read failures (they become the reason).
    :raises ProfileError: a shipped profile fails to load (a packaging bug, not a device issue).
    """
    candidates = list(profiles) if profiles is not None else [load_profile(n) for n in available_profiles()]
    fallback = next((p.name for p in candidates if p.identity.fallback), GENERIC)
    name, name_error = _read_text(read_device_name)
    manufacturer, _ = _read_text(read_manufacturer_name)
    evidence = _Evidence(name, manufacturer, fallback)

    if allow_mac and read_device_type is not None:
        try:
            device_type = int(read_device_type())
        except SmartBattError as exc:
            return evidence.generic(f"DeviceType (MAC 0x0001) could not be read: {exc}; not guessing from the name")
        return _by_device_type(device_type, candidates, evidence)

    why_no_mac = "ManufacturerAccess writes not allowed" if not allow_mac else "no DeviceType reader given"
    if name is None:
        detail = f"DeviceName unreadable: {name_error}" if name_error else "no DeviceName"
        return evidence.generic(f"{detail}; DeviceType not checked ({why_no_mac})")
    matches = _name_matches(name, candidates)
    if len(matches) == 1:
        chosen = matches[0]
        return evidence.chose(
            chosen,
            f"DeviceName {name!r} matches {chosen.name}; DeviceType not checked ({why_no_mac})",
            confirmed=False,
        )
    if matches:
        names = ", ".join(p.name for p in matches)
        return evidence.generic(f"DeviceName {name!r} matches several profiles ({names}); not guessing")
    return evidence.generic(f"DeviceName {name!r} matches no chip profile")


@dataclass(frozen=True)
class _Evidence:
    name: str | None
    manufacturer: str | None
    fallback: str
    device_type: int | None = None

    def _suffix(self) -> str:
        return f" (ManufacturerName {self.manufacturer!r})" if self.manufacturer else ""

    def generic(self, why: str) -> Detection:
        return Detection(
            self.fallback,
            None,
            f"{why}: using {self.fallback}{self._suffix()}",
            False,
            self.device_type,
            self.name,
            self.manufacturer,
        )

    def chose(self, profile: Profile, why: str, *, confirmed: bool) -> Detection:
        variant = _variant(profile, self.name)
        text = f"{why}{self._suffix()}"
        if variant is not None:
            text += f"; DeviceName names variant {variant}"
        return Detection(profile.name, variant, text, confirmed, self.device_type, self.name, self.manufacturer)


def _by_device_type(device_type: int, candidates: list[Profile], evidence: _Evidence) -> Detection:
    evidence = _Evidence(evidence.name, evidence.manufacturer, evidence.fallback, device_type)
    shown = f"DeviceType 0x{device_type:04X}"
    matches = [p for p in candidates if device_type in p.identity.device_types]
    if not matches:
        return evidence.generic(f"{shown} is in no chip profile (clone or unsupported chip)")
    if len(matches) > 1 and evidence.name is not None:
        narrowed = _name_matches(evidence.name, matches)
        if len(narrowed) == 1:
            matches = narrowed
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches)
        return evidence.generic(f"{shown} matches several profiles ({names}) and DeviceName does not decide")
    chosen = matches[0]
    why = f"{shown} identifies {chosen.name}"
    if evidence.name is not None:
        others = [p.name for p in _name_matches(evidence.name, candidates) if p is not chosen]
        if others:
            why += f" (DeviceName {evidence.name!r} looks like {', '.join(others)}; DeviceType wins)"
    return evidence.chose(chosen, why, confirmed=True)


def _read_text(reader: Callable[[], str] | None) -> tuple[str | None, str]:
    if reader is None:
        return None, ""
    try:
        text = reader()
    except SmartBattError as exc:
        return None, str(exc)
    text = text.strip().strip("\x00").strip()
    return (text or None), ""


def _name_matches(name: str, candidates: Sequence[Profile]) -> list[Profile]:
    return [
        p
        for p in candidates
        if not p.identity.fallback
        and any(re.search(pattern, name, re.IGNORECASE) for pattern in p.identity.device_name_patterns)
    ]


def _variant(profile: Profile, name: str | None) -> str | None:
    if name is None:
        return None
    hits = [
        v.name
        for v in profile.variants
        if v.device_name_patterns and any(re.search(pt, name, re.IGNORECASE) for pt in v.device_name_patterns)
    ]
    return hits[0] if len(hits) == 1 else None
