"""Data flash of TI gauges: entries by name, golden images, FlashStream files, ``.gg.csv`` files.

Access (ti_gauges.md §7): on bq40z-family gauges the physical address is sent as a MAC subcommand
through ManufacturerBlockAccess (0x44); a block read returns the address echo and up to 32 bytes,
a block write ``[addr_lo, addr_hi, data…]`` programs them. Only UNSEALED or FULL ACCESS gauges
answer; every operation here checks the security state first and refuses a SEALED gauge with
:class:`~smartbatt.errors.SealedError` saying what to do. Entries whose address no public source
gives are refused by name ("address unknown for this chip"). The profile's
``df_write_delay_ms`` is waited after every block write (PX4 waits 100 ms on bq40z50).

Every write is verified by reading the bytes back (:class:`~smartbatt.errors.VerifyError`).

**Golden image** (our format, JSON, UTF-8)::

    {
      "format": "smartbatt-dataflash-image",
      "version": 1,
      "profile": "bq4050",            # chip profile name (and "variant", or null)
      "variant": null,
      "created": "2026-01-02T03:04:05+00:00",
      "device": {"device_type": "0x9E34", "device_name": "…", "manufacturer": "…", "serial": 4660},
      "entries": [
        {"key": "Protections:CUV:Threshold", "address": "0x4481", "type": "I2", "unit": "mV",
         "value": 2500},
        …
      ]
    }

``value`` is the display value (scaled number, hex fields as integers, text for strings), exactly
as :meth:`~smartbatt.profiles.schema.DataFlashEntry.encode` takes it; ``address``/``type``/``unit``
are informative and checked against the profile on import.

**Import** (:meth:`DataFlash.import_image`, :meth:`DataFlash.import_gg`): read the pack, compute the
differences (a dry run stops here), back up every addressed entry's present value to an image file,
then write the changed entries one by one, each verified, recording each in a journal file. A bus
failure stops with :class:`~smartbatt.errors.InterruptedWrite`, which names the entries written,
the one in doubt and those remaining; the journal and the backup stay. Running the same import
again finds the written entries already at their target (the diff skips them), keeps the first
backup, writes the rest and removes the journal.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from smartbatt.errors import (
    AccessDenied,
    DecodeError,
    FileFormatError,
    InterruptedWrite,
    RangeError,
    SealedError,
    SmartBattError,
    UnknownCommand,
    VerifyError,
)
from smartbatt.gauge import flashstream, ggcsv
from smartbatt.gauge.flashstream import FsOp, OpKind
from smartbatt.gauge.gauge import Gauge
from smartbatt.gauge.mac import MANUFACTURER_BLOCK_ACCESS
from smartbatt.profiles.schema import DataFlashAccessMethod, DataFlashEntry, DFType, DFValue, Profile

__all__ = [
    "IMAGE_FORMAT",
    "Change",
    "DataFlash",
    "FlashStreamResult",
    "FsStep",
    "Image",
    "ImportPlan",
    "ImportResult",
    "load_image",
    "plan_flashstream",
]

IMAGE_FORMAT = "smartbatt-dataflash-image"
JOURNAL_FORMAT = "smartbatt-import-journal"
FORMAT_VERSION = 1

#: progress callback: (steps done, steps total, what is being done).
Progress = Callable[[int, int, str], None]


# --- records ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    """A data-flash image: profile, where it came from, and display values by ``Class:Subclass:Name``."""

    profile: str
    variant: str | None
    values: Mapping[str, DFValue]
    device: Mapping[str, Any] = field(default_factory=dict)
    created: str = ""
    #: file it was read from ("" when built in code).
    file: str = ""


@dataclass(frozen=True)
class Change:
    """One entry whose value on the pack differs from the target."""

    key: str
    address: int
    old: DFValue
    new: DFValue
    unit: str = ""


@dataclass(frozen=True)
class ImportPlan:
    """What an import would do to this pack."""

    source: str
    changes: tuple[Change, ...]
    #: entries already at their target value.
    unchanged: tuple[str, ...]
    #: (entry, why it is not written) — no published address, not in the profile…
    skipped: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ImportResult:
    """What an import did."""

    plan: ImportPlan
    dry_run: bool
    #: entries written and verified by this run.
    written: tuple[str, ...]
    #: entries an earlier, interrupted run wrote (from its journal).
    written_before: tuple[str, ...] = ()
    #: backup of the previous values (None for a dry run or when nothing changed).
    backup: Path | None = None


@dataclass(frozen=True)
class FsStep:
    """One FlashStream line, described."""

    line: int
    op: FsOp
    #: readable description (``write data flash 0x4481 Protections:CUV:Threshold, 2 bytes``).
    text: str

    @property
    def writes(self) -> bool:
        return self.op.kind in (OpKind.WRITE_COMMAND, OpKind.WRITE_WORD, OpKind.WRITE_BLOCK)


@dataclass(frozen=True)
class FlashStreamResult:
    """What a FlashStream run did (or, dry, would do)."""

    file: str
    steps: tuple[FsStep, ...]
    dry_run: bool
    #: lines executed (all of them unless dry).
    executed: int

    @property
    def writes(self) -> int:
        return sum(1 for s in self.steps if s.writes)

    @property
    def compares(self) -> int:
        return sum(1 for s in self.steps if s.op.kind in (OpKind.COMPARE_WORD, OpKind.COMPARE_BLOCK))


# --- images ---------------------------------------------------------------------------------------------


def _json_value(entry: DataFlashEntry, value: DFValue) -> DFValue:
    if entry.type is DFType.F4 or (entry.scale != 1.0 and entry.type is not DFType.H):
        return float(value)
    return value


def image_to_json(image: Image, profile: Profile) -> dict[str, Any]:
    """The JSON document of :data:`IMAGE_FORMAT` (entries in profile order)."""
    entries = []
    for e in profile.data_flash:
        if e.key in image.values:
            entries.append(
                {
                    "key": e.key,
                    "address": None if e.address is None else f"0x{e.address:04X}",
                    "type": e.type.value,
                    "unit": e.unit,
                    "value": _json_value(e, image.values[e.key]),
                }
            )
    return {
        "format": IMAGE_FORMAT,
        "version": FORMAT_VERSION,
        "profile": image.profile,
        "variant": image.variant,
        "created": image.created,
        "device": dict(image.device),
        "entries": entries,
    }


def write_image(path: str | os.PathLike[str], image: Image, profile: Profile) -> None:
    """Write an image file (atomically: a reader never sees half a file)."""
    _atomic_write(Path(path), json.dumps(image_to_json(image, profile), indent=2, ensure_ascii=False) + "\n")


def load_image(path: str | os.PathLike[str], profile: Profile) -> Image:
    """Read and validate an image file against ``profile``.

    :raises FileFormatError: unreadable, not JSON, not our format, another profile, an unknown
        entry, a type/address that contradicts the profile, or a value out of range.
    """
    label = os.fspath(path)
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise FileFormatError(label, None, f"cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FileFormatError(label, getattr(exc, "lineno", None), f"not a JSON image: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != IMAGE_FORMAT:
        raise FileFormatError(label, None, f"not a {IMAGE_FORMAT} file")
    if doc.get("version") != FORMAT_VERSION:
        version = doc.get("version")
        raise FileFormatError(label, None, f"image version {version!r}; this smartbatt reads {FORMAT_VERSION}")
    if doc.get("profile") != profile.name:
        raise FileFormatError(label, None, f"image is for {doc.get('profile')!r}, the pack is {profile.name}")
    raw_entries = doc.get("entries")
    if not isinstance(raw_entries, list):
        raise FileFormatError(label, None, "'entries' must be a list")
    values: dict[str, DFValue] = {}
    for i, item in enumerate(raw_entries):
        key, value = _image_entry(label, i, item, profile)
        if key in values:
            raise FileFormatError(label, None, f"entries[{i}]: {key} appears twice")
        values[key] = value
    device = doc.get("device") if isinstance(doc.get("device"), dict) else {}
    variant = doc.get("variant") if isinstance(doc.get("variant"), str) else None
    created = str(doc.get("created") or "")
    return Image(profile.name, variant, values, device or {}, created, label)


def _image_entry(label: str, i: int, item: Any, profile: Profile) -> tuple[str, DFValue]:
    where = f"entries[{i}]"
    if not isinstance(item, dict) or not isinstance(item.get("key"), str):
        raise FileFormatError(label, None, f"{where}: needs a 'key' string")
    key = item["key"]
    try:
        entry = profile.df_entry(key)
    except KeyError:
        raise FileFormatError(label, None, f"{where}: {key} is not in the {profile.name} data-flash map") from None
    if item.get("type", entry.type.value) != entry.type.value:
        raise FileFormatError(label, None, f"{where}: {key} is {item.get('type')} in the file, {entry.type} here")
    address = item.get("address")
    if address is not None and entry.address is not None and address != f"0x{entry.address:04X}":
        raise FileFormatError(label, None, f"{where}: {key} at {address} in the file, 0x{entry.address:04X} here")
    value = item.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FileFormatError(label, None, f"{where}: {key}: value must be a number or text")
    try:
        entry.check(value)
    except (RangeError, DecodeError) as exc:
        raise FileFormatError(label, None, f"{where}: {exc.message}") from None
    return key, value


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _digest(values: Mapping[str, DFValue]) -> str:
    return hashlib.sha256(json.dumps(dict(values), sort_keys=True, default=str).encode()).hexdigest()


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "image"


# --- FlashStream description (no device needed) -----------------------------------------------------------


def _describe(op: FsOp, profile: Profile | None) -> str:
    kind = op.kind
    if kind is OpKind.WAIT:
        return f"wait {op.wait_ms} ms"
    target = f"0x{op.address:02X} cmd 0x{op.command:02X}"
    if kind is OpKind.WRITE_COMMAND:
        return f"send command 0x{op.command:02X} to 0x{op.address:02X}"
    if kind is OpKind.WRITE_WORD:
        return f"write word 0x{op.word:04X} to {target}"
    if kind is OpKind.COMPARE_WORD:
        return f"read word {target}, expect 0x{op.word:04X}"
    if kind is OpKind.WRITE_BLOCK and op.command == MANUFACTURER_BLOCK_ACCESS and len(op.data) >= 2:
        sub = int.from_bytes(op.data[:2], "little")
        body = op.data[2:]
        names = _entries_at(profile, sub, len(body)) if body else ""
        if body:
            return f"write data flash 0x{sub:04X}, {len(body)} bytes{names}"
        return f"select MAC/data-flash 0x{sub:04X}"
    if kind is OpKind.WRITE_BLOCK:
        return f"write block of {len(op.data)} bytes to {target}"
    if kind is OpKind.COMPARE_BLOCK:
        return f"read block {target}, expect {len(op.data)} bytes"
    return f"{kind.value}: I2C line (not run by this SMBus driver)"


def _entries_at(profile: Profile | None, address: int, length: int) -> str:
    if profile is None:
        return ""
    names = [
        e.key
        for e in profile.data_flash
        if e.address is not None and e.address < address + length and address < e.address + e.size
    ]
    if not names:
        return ""
    shown = ", ".join(names[:4]) + (f", … ({len(names)} entries)" if len(names) > 4 else "")
    return f" ({shown})"


def plan_flashstream(path: str | os.PathLike[str], profile: Profile | None = None) -> tuple[FsStep, ...]:
    """Parse a FlashStream file and describe every line (the dry run; no device needed).

    :raises FileFormatError: malformed file.
    :raises AccessDenied: an I2C-gauge file (``W:``/``C:`` lines) — this driver runs SMBus files.
    """
    ops = flashstream.read_flashstream(path)
    for op in ops:
        if op.kind.dialect == "i2c":
            raise AccessDenied(
                f"{os.fspath(path)}:{op.line}: {op.kind.value}: lines are for I2C gauges; "
                "smartbatt runs SMBus FlashStream files (SWC/SWW/SWB/SCW/SCL/X)"
            )
    return tuple(FsStep(op.line, op, _describe(op, profile)) for op in ops)


# --- the data flash of one gauge ------------------------------------------------------------------------------


class DataFlash:
    """Data flash of ``gauge`` through its profile's access method.

    :raises AccessDenied: (on use) the profile's access method is not implemented here.
    """

    def __init__(self, gauge: Gauge) -> None:
        self.gauge = gauge
        self.profile = gauge.profile
        self.access = gauge.profile.data_flash_access

    # --- entries by name ----------------------------------------------------------------------

    def entry(self, name: str) -> DataFlashEntry:
        """An entry by ``Class:Subclass:Name`` (case-insensitive).

        :raises UnknownCommand: no such entry (the message suggests close names).
        """
        by_key = {e.key.lower(): e for e in self.profile.data_flash}
        found = by_key.get(name.strip().lower())
        if found is not None:
            return found
        close = difflib.get_close_matches(name, [e.key for e in self.profile.data_flash], n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else " (see `smartbatt df list`)"
        raise UnknownCommand(f"{self.profile.name} has no data-flash entry {name!r}{hint}")

    def _addressed(self, entry: DataFlashEntry) -> int:
        if entry.address is None:
            raise AccessDenied(
                f"{entry.key}: address unknown for this chip in profile {self.profile.name} (no public source "
                "gives it); the entry can be matched by name in .gg.csv files but not read or written"
            )
        return entry.address

    def read(self, name: str) -> DFValue:
        """The display value of one entry (``2500`` mV, ``55.0`` °C, ``0xFF`` hex, text).

        :raises UnknownCommand, AccessDenied, SealedError, DecodeError, TransportError.
        """
        entry = self.entry(name)
        address = self._addressed(entry)
        self._require_access()
        return entry.decode(self.read_bytes(address, entry.size))

    def write(self, name: str, value: DFValue | str) -> DFValue:
        """Write one entry (text is parsed as bqStudio shows values), then read it back.

        :returns: the value read back.
        :raises RangeError: outside the entry's or its type's range (checked before any I/O).
        :raises DecodeError: text that is not a value of the entry's type.
        :raises SealedError: the gauge is SEALED.
        :raises VerifyError: the bytes read back differ.
        """
        entry = self.entry(name)
        target = entry.parse_display(value) if isinstance(value, str) else value
        data = entry.encode(target)
        address = self._addressed(entry)
        self._require_access()
        self._write_verified(entry, address, data)
        return entry.decode(data)

    # --- blocks ---------------------------------------------------------------------------------

    def _require_access(self) -> None:
        if self.access.method is not DataFlashAccessMethod.MAC_BLOCK:
            raise AccessDenied(
                f"{self.profile.name} reaches data flash by {self.access.method.value} access, "
                "which smartbatt does not implement"
            )
        state = self.gauge.security_state()
        if state.sealed:
            raise SealedError(
                "data flash is not accessible while the gauge is SEALED; run `smartbatt unseal` first",
                address=self.gauge.address,
            )

    def read_bytes(self, address: int, length: int) -> bytes:
        """``length`` bytes from ``address``, one block read per ``block_size`` bytes (no security check)."""
        out = bytearray()
        while len(out) < length:
            data = self.gauge.mac.read(address + len(out))
            if not data:
                raise DecodeError(f"data flash 0x{address + len(out):04X}: the gauge returned no bytes")
            out += data[: length - len(out)]
        return bytes(out)

    def write_bytes(self, address: int, data: bytes) -> None:
        """Program ``data`` at ``address`` in blocks of ``block_size``, waiting ``df_write_delay_ms``
        after each (no security check, no verify)."""
        size = self.access.block_size
        delay = self.profile.timing.df_write_delay_ms
        for offset in range(0, len(data), size):
            self.gauge.mac.write(address + offset, data[offset : offset + size])
            if delay:
                self.gauge.sleep(delay / 1000.0)

    def _write_verified(self, entry: DataFlashEntry, address: int, data: bytes) -> None:
        self.write_bytes(address, data)
        back = self.read_bytes(address, len(data))
        if back != data:
            raise VerifyError(
                f"{entry.key}: wrote {data.hex(' ').upper()} at 0x{address:04X} but read back {back.hex(' ').upper()}",
                address=self.gauge.address,
                command=MANUFACTURER_BLOCK_ACCESS,
            )

    def _read_raw(self, entries: Iterable[DataFlashEntry]) -> dict[str, bytes]:
        """Raw bytes of addressed entries, reading each block-sized run of neighbours once."""
        ordered = sorted((e for e in entries if e.address is not None), key=lambda e: e.address or 0)
        out: dict[str, bytes] = {}
        run: list[DataFlashEntry] = []

        def flush() -> None:
            if not run:
                return
            start = run[0].address or 0
            end = max((e.address or 0) + e.size for e in run)
            data = self.read_bytes(start, end - start)
            for e in run:
                offset = (e.address or 0) - start
                out[e.key] = data[offset : offset + e.size]
            run.clear()

        for e in ordered:
            assert e.address is not None
            if run and e.address + e.size - (run[0].address or 0) > self.access.block_size:
                flush()
            run.append(e)
        flush()
        return out

    def read_all(self, keys: Iterable[str] | None = None) -> dict[str, DFValue]:
        """Display values of every addressed entry (or of ``keys``), in profile order.

        :raises SealedError, AccessDenied, TransportError.
        """
        self._require_access()
        wanted = {k.lower() for k in keys} if keys is not None else None
        entries = [
            e for e in self.profile.data_flash if e.address is not None and (wanted is None or e.key.lower() in wanted)
        ]
        raw = self._read_raw(entries)
        return {e.key: e.decode(raw[e.key]) for e in entries}

    # --- images ---------------------------------------------------------------------------------

    def _device(self) -> dict[str, Any]:
        b = self.gauge.battery
        info: dict[str, Any] = {}
        for key, read in (
            ("device_name", lambda: b.device_name),
            ("manufacturer", lambda: b.manufacturer_name),
            ("serial", lambda: b.serial_number),
        ):
            with contextlib.suppress(SmartBattError):
                info[key] = read()
        if self.gauge.mac.usable:
            with contextlib.suppress(SmartBattError):
                info["device_type"] = f"0x{self.gauge.device_type():04X}"
        return info

    def snapshot(self) -> Image:
        """Every addressed entry as an :class:`Image` of this pack, now."""
        values = self.read_all()
        created = datetime.now(UTC).isoformat(timespec="seconds")
        return Image(self.profile.name, self.profile.variant, values, self._device(), created)

    def export_image(self, path: str | os.PathLike[str]) -> Image:
        """Write every addressed entry to an image file (the format in the module docstring)."""
        image = self.snapshot()
        write_image(path, image, self.profile)
        return image

    def diff(self, target: Mapping[str, DFValue], source: str = "") -> ImportPlan:
        """Compare the pack with ``target`` values (bytes are compared, not rounded numbers).

        :raises UnknownCommand: a key not in the profile.
        :raises RangeError, DecodeError: a target value that does not fit its entry.
        """
        self._require_access()
        entries: list[DataFlashEntry] = []
        skipped: list[tuple[str, str]] = []
        encoded: dict[str, bytes] = {}
        for key, value in target.items():
            entry = self.entry(key)
            if entry.address is None:
                skipped.append((entry.key, f"address unknown for this chip in profile {self.profile.name}"))
                continue
            encoded[entry.key] = entry.encode(value)
            entries.append(entry)
        raw = self._read_raw(entries)
        changes: list[Change] = []
        unchanged: list[str] = []
        for entry in entries:
            assert entry.address is not None
            if raw[entry.key] == encoded[entry.key]:
                unchanged.append(entry.key)
            else:
                new = entry.decode(encoded[entry.key])
                changes.append(Change(entry.key, entry.address, entry.decode(raw[entry.key]), new, entry.unit))
        return ImportPlan(source, tuple(changes), tuple(unchanged), tuple(skipped))

    def import_image(
        self,
        path: str | os.PathLike[str],
        *,
        dry_run: bool = False,
        backup_dir: str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
    ) -> ImportResult:
        """Program a golden image into the pack (see the module docstring for the steps).

        :param backup_dir: where the backup and the journal go (default: the image's directory).
        :raises FileFormatError: the image is malformed or for another profile.
        :raises SealedError: the gauge is SEALED.
        :raises InterruptedWrite: a bus failure or a failed verify stopped the import; it lists the
            entries written, the one in doubt and those remaining. Run the import again to finish.
        """
        image = load_image(path, self.profile)
        return self.apply(image.values, os.fspath(path), dry_run=dry_run, backup_dir=backup_dir, progress=progress)

    def apply(
        self,
        values: Mapping[str, DFValue],
        source: str,
        *,
        dry_run: bool = False,
        backup_dir: str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
        skipped: Iterable[tuple[str, str]] = (),
    ) -> ImportResult:
        """Diff, back up, write with verify and journal — the engine of every import."""
        plan = self.diff(values, source)
        if skipped:
            plan = ImportPlan(plan.source, plan.changes, plan.unchanged, (*plan.skipped, *skipped))
        folder = Path(backup_dir) if backup_dir is not None else Path(source).resolve().parent
        identity = self._device()
        serial = identity.get("serial")
        pack = serial if serial is not None else "pack"
        stem = f"{_safe(Path(source).name.split('.')[0])}-{self.profile.name}-{pack}"
        journal_path = folder / f"{stem}.journal.json"
        journal = self._load_journal(journal_path, values)
        earlier = tuple(journal.get("written", ())) if journal else ()
        if dry_run:
            return ImportResult(plan, True, (), earlier)
        if not plan.changes:
            with contextlib.suppress(FileNotFoundError):
                journal_path.unlink()
            return ImportResult(plan, False, (), earlier)
        backup = Path(journal["backup"]) if journal and Path(str(journal.get("backup", ""))).is_file() else None
        if backup is None:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            backup = folder / f"{stem}-{stamp}.backup.json"
            write_image(backup, self.snapshot(), self.profile)
        journal = {
            "format": JOURNAL_FORMAT,
            "version": FORMAT_VERSION,
            "source": source,
            "digest": _digest(values),
            "profile": self.profile.name,
            "device": identity,
            "backup": str(backup),
            "started": (journal or {}).get("started") or datetime.now(UTC).isoformat(timespec="seconds"),
            "written": list(earlier),
        }
        _atomic_write(journal_path, json.dumps(journal, indent=2, default=str) + "\n")
        written = self._write_changes(plan, journal, journal_path, backup, progress)
        journal_path.unlink()
        return ImportResult(plan, False, written, earlier, backup)

    def _load_journal(self, path: Path, values: Mapping[str, DFValue]) -> dict[str, Any] | None:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("format") != JOURNAL_FORMAT or doc.get("digest") != _digest(values):
            return None  # another import's journal: this run starts afresh
        return doc

    def _write_changes(
        self,
        plan: ImportPlan,
        journal: dict[str, Any],
        journal_path: Path,
        backup: Path,
        progress: Progress | None,
    ) -> tuple[str, ...]:
        written: list[str] = []
        total = len(plan.changes)
        for i, change in enumerate(plan.changes):
            if progress is not None:
                progress(i, total, change.key)
            entry = self.profile.df_entry(change.key)
            try:
                self._write_verified(entry, change.address, entry.encode(change.new))
            except SmartBattError as exc:
                raise self._interrupted(plan, journal, journal_path, backup, i, exc) from exc
            written.append(change.key)
            journal["written"].append(change.key)
            _atomic_write(journal_path, json.dumps(journal, indent=2, default=str) + "\n")
        if progress is not None:
            progress(total, total, "done")
        return tuple(written)

    def _interrupted(
        self,
        plan: ImportPlan,
        journal: dict[str, Any],
        journal_path: Path,
        backup: Path,
        index: int,
        exc: SmartBattError,
    ) -> InterruptedWrite:
        done = tuple(journal["written"])
        doubt = plan.changes[index].key
        remaining = tuple(c.key for c in plan.changes[index + 1 :])
        message = (
            f"import of {plan.source} interrupted at {doubt} by {type(exc).__name__}: {exc}. "
            f"Written and verified: {len(done)} ({', '.join(done) or 'none'}); "
            f"in doubt: {doubt} (the next run checks it); "
            f"not written: {len(remaining)} ({', '.join(remaining) or 'none'}). "
            f"Run the same import again to complete it; previous values are in {backup}"
        )
        return InterruptedWrite(
            message,
            done=done,
            in_doubt=doubt,
            remaining=remaining,
            cause=exc,
            journal=str(journal_path),
            address=self.gauge.address,
        )

    # --- .gg.csv ----------------------------------------------------------------------------------

    def export_gg(self, path: str | os.PathLike[str]) -> Mapping[str, DFValue]:
        """Write every addressed entry as a bqStudio data-memory export (``.gg.csv``)."""
        values = self.read_all()
        device_type = None
        if self.gauge.mac.usable:
            with contextlib.suppress(SmartBattError):
                device_type = self.gauge.device_type()
        ggcsv.write_gg(path, self.profile, values, device_number=device_type)
        return values

    def import_gg(
        self,
        path: str | os.PathLike[str],
        *,
        dry_run: bool = False,
        backup_dir: str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
    ) -> ImportResult:
        """Import a ``.gg.csv`` export: rows the profile does not know, or whose address is unknown,
        are listed as skipped; the rest go through :meth:`apply` (diff first, backup, journal).

        :raises FileFormatError: malformed file, a value of the wrong type or out of range, a unit
            that contradicts the profile, or a Device Number the profile does not list.
        """
        gg = ggcsv.read_gg(path)
        imported = ggcsv.import_gg(gg, self.profile, strict=False)
        self._check_device_number(gg)
        unknown = tuple((row.key, f"not in the {self.profile.name} data-flash map") for row in imported.unknown)
        return self.apply(
            imported.values, os.fspath(path), dry_run=dry_run, backup_dir=backup_dir, progress=progress, skipped=unknown
        )

    def _check_device_number(self, gg: ggcsv.GgFile) -> None:
        types = self.profile.identity.device_types
        if gg.device_number is not None and types and gg.device_number not in types:
            expected = ", ".join(f"{d:04X}" for d in types)
            raise FileFormatError(
                gg.file, None, f"file is for Device Number {gg.device_number:04X}; {self.profile.name} is {expected}"
            )

    # --- FlashStream ----------------------------------------------------------------------------------

    def export_flashstream(self, path: str | os.PathLike[str]) -> int:
        """Write this pack's data flash as an SMBus FlashStream file (``.df.fs``).

        Like a bqStudio export, the file carries whole 32-byte blocks: every block that holds an
        addressed entry is read from the pack and written back whole (bytes between known entries
        are this pack's), each followed by a read-back compare (``SCL``) of the full block.

        :returns: the number of blocks.
        """
        self._require_access()
        size = self.access.block_size
        blocks: dict[int, bytes] = {}
        next_free = -1
        for e in sorted((e for e in self.profile.data_flash if e.address is not None), key=lambda e: e.address or 0):
            assert e.address is not None
            if e.address + e.size <= next_free:
                continue
            start = max(e.address, next_free)
            length = -(-(e.address + e.size - start) // size) * size
            if self.access.last is not None:
                length = min(length, self.access.last + 1 - start)
            blocks[start] = self.read_bytes(start, length)
            next_free = start + length
        delay = self.profile.timing.df_write_delay_ms
        ops = flashstream.dataflash_ops(
            blocks, address=self.gauge.address, block_size=size, write_delay_ms=round(delay) if delay else 0
        )
        comments = [
            f"smartbatt data-flash export, profile {self.profile.name}",
            f"created {datetime.now(UTC).isoformat(timespec='seconds')}",
        ]
        flashstream.write_flashstream(path, ops, comments)
        return len(blocks)

    def run_flashstream(
        self,
        path: str | os.PathLike[str],
        *,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> FlashStreamResult:
        """Run a TI SMBus FlashStream file line by line (see :mod:`smartbatt.gauge.flashstream`).

        The gauge's security state is not checked: golden files may carry their own key lines.

        :raises FileFormatError: malformed file (nothing is run).
        :raises VerifyError: an ``SCW``/``SCL`` compare failed; the message names the line.
        :raises InterruptedWrite: a bus error stopped the run; it names the line and the lines done.
        """
        label = os.fspath(path)
        steps = plan_flashstream(path, self.profile)
        if dry_run:
            return FlashStreamResult(label, steps, True, 0)
        # TI files move 34-byte blocks through 0x44 (32 data bytes + address): let the transport
        # carry the largest block of the file (SMBus 3.0 allows up to 255 bytes).
        transport = self.gauge.battery.transport
        largest = max((len(s.op.data) for s in steps if s.op.kind is OpKind.WRITE_BLOCK), default=0)
        transport.max_block = max(transport.max_block, min(largest, 255))
        for i, step in enumerate(steps):
            if progress is not None:
                progress(i, len(steps), step.text)
            try:
                self._run_op(step, label)
            except VerifyError:
                raise
            except SmartBattError as exc:
                done = tuple(f"line {s.line}" for s in steps[:i])
                remaining = tuple(f"line {s.line}" for s in steps[i + 1 :])
                raise InterruptedWrite(
                    f"{label}:{step.line}: {step.op.kind.value}: stopped by {type(exc).__name__}: {exc} "
                    f"({len(done)} lines run before it, {len(remaining)} not run)",
                    done=done,
                    in_doubt=f"line {step.line}",
                    remaining=remaining,
                    cause=exc,
                    address=self.gauge.address,
                ) from exc
        if progress is not None:
            progress(len(steps), len(steps), "done")
        return FlashStreamResult(label, steps, False, len(steps))

    def _run_op(self, step: FsStep, label: str) -> None:
        op = step.op
        t = self.gauge.battery.transport
        pec = self.gauge.battery.pec
        match op.kind:
            case OpKind.WAIT:
                self.gauge.sleep(op.wait_ms / 1000.0)
            case OpKind.WRITE_COMMAND:
                t.send_byte(op.address, op.command, pec=pec)
            case OpKind.WRITE_WORD:
                t.write_word(op.address, op.command, op.word, pec=pec)
            case OpKind.WRITE_BLOCK:
                t.write_block(op.address, op.command, op.data, pec=pec)
            case OpKind.COMPARE_WORD:
                got = t.read_word(op.address, op.command, pec=pec)
                if got != op.word:
                    raise VerifyError(
                        f"{label}:{step.line}: SCW: read 0x{got:04X} from command 0x{op.command:02X}, "
                        f"the file expects 0x{op.word:04X}",
                        address=op.address,
                        command=op.command,
                    )
            case OpKind.COMPARE_BLOCK:
                data = bytes(t.read_block(op.address, op.command, pec=pec))
                if data != op.data:
                    raise VerifyError(
                        f"{label}:{step.line}: SCL: read {len(data)} bytes {_short(data)} from command "
                        f"0x{op.command:02X}, the file expects {len(op.data)} bytes {_short(op.data)}",
                        address=op.address,
                        command=op.command,
                    )
            case _:  # pragma: no cover - plan_flashstream refuses I2C lines
                raise AccessDenied(f"{label}:{step.line}: {op.kind.value}: not an SMBus line")


def _short(data: bytes) -> str:
    text = data[:12].hex(" ").upper()
    return f"[{text}{' …' if len(data) > 12 else ''}]"
