"""Data flash: entries by name with checks and verify, sealing, golden images with backup and an
interrupted import that a second run completes, FlashStream files, .gg.csv files, and data-flash
writes that change how the emulated gauge protects the pack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from smartbatt.emulator.load import ConstantCurrent
from smartbatt.errors import (
    AccessDenied,
    BusBusy,
    DecodeError,
    FileFormatError,
    InterruptedWrite,
    NoAcknowledge,
    RangeError,
    SealedError,
    UnknownCommand,
    VerifyError,
)
from smartbatt.gauge.dataflash import DataFlash, load_image, plan_flashstream
from smartbatt.gauge.gauge import Gauge
from smartbatt.profiles.loader import load_profile
from smartbatt.sbs.battery import Battery
from smartbatt.transports import TransactionRecord, Transport, open_transport
from tests.gauge_helpers import BAT, emulator, log, no_sleep

COV_REC = "Protections:COV:Threshold Rec Temp"


def df_writes(records: list[TransactionRecord]) -> list[TransactionRecord]:
    """0x44 block writes that carry data (address + bytes), i.e. data-flash programming."""
    return [r for r in records if r.protocol.value == "write_block" and r.command == 0x44 and len(r.data_out) > 3]


def flash(t: Transport, chip: str = "bq4050") -> DataFlash:
    return DataFlash(Gauge(Battery(t), chip, sleep=no_sleep))


@pytest.fixture
def unsealed() -> Iterator[Transport]:
    with open_transport("emulated:bq4050?speed=0&security=unsealed") as t:
        yield t


# --- entries by name ------------------------------------------------------------------------------


def test_get_and_set_with_read_back(unsealed: Transport) -> None:
    df = flash(unsealed)
    assert df.read("Protections:CUV:Threshold") == 2500  # as the emulated pack is configured
    assert df.write("protections:cuv:threshold", "2600") == 2600  # names are case-insensitive
    assert df.read("Protections:CUV:Threshold") == 2600
    assert emulator(unsealed).vpack.protections.params["CUV:Threshold"] == 2600  # the gauge follows
    assert df.write("Settings:Protection:Enabled Protections D", "0c") == 0x0C
    assert emulator(unsealed).dataflash is not None
    assert df.read("Settings:Protection:Enabled Protections D") == 0x0C


def test_the_bytes_on_the_wire_for_one_entry(unsealed: Transport) -> None:
    df = flash(unsealed)
    df.gauge.battery.pec  # noqa: B018
    records = log(unsealed)
    df.write("Protections:CUV:Threshold", 2550)
    assert [(r.protocol.value, r.data_out.hex()) for r in records if r.command == 0x44][:3] == [
        ("write_block", "048144f609"),  # count 4: address 0x4481 LE, 2550 = 0x09F6 LE
        ("write_block", "028144"),  # select the address for the read-back
        ("read_block", ""),
    ]


@pytest.mark.parametrize(
    ("name", "value", "error", "match"),
    [
        ("Protections:CUV:Threshold", "40000", RangeError, "outside I2 range"),
        ("Protections:CUV:Delay", "-1", RangeError, "outside U1 range"),
        ("Protections:CUV:Threshold", "abc", DecodeError, "not a number"),
        ("Protections:CUV:Threshold", "2500.5", DecodeError, "not a whole number"),
        ("Settings:Protection:Enabled Protections D", "1ff", RangeError, "above the maximum 255"),
        ("Settings:Protection:Enabled Protections C", "1ff", RangeError, "does not fit 1 byte"),
        ("Protections:CUV:Thresold", "1", UnknownCommand, "did you mean Protections:CUV:Threshold"),
    ],
)
def test_bad_values_are_refused_before_any_io(
    unsealed: Transport, name: str, value: str, error: type[Exception], match: str
) -> None:
    df = flash(unsealed)
    records = log(unsealed)
    with pytest.raises(error, match=match):
        df.write(name, value)
    assert records == []


def test_sealed_refuses_reads_and_writes_and_says_what_to_do() -> None:
    with open_transport("emulated:bq4050?speed=0") as t:
        df = flash(t)
        records = log(t)
        for call in (lambda: df.read(COV_REC), lambda: df.write(COV_REC, 4100), df.read_all, df.snapshot):
            with pytest.raises(SealedError, match="SEALED; run `smartbatt unseal` first"):
                call()
        assert df_writes(records) == []
        assert emulator(t).dataflash is not None and emulator(t).dataflash.value(COV_REC) == 4300  # type: ignore[union-attr]


def test_the_emulated_gauge_itself_ignores_data_flash_while_sealed() -> None:
    with open_transport("emulated:bq4050?speed=0") as t:
        t.write_block(BAT, 0x44, bytes.fromhex("8c44") + (4000).to_bytes(2, "little"))  # bypass the driver
        t.write_block(BAT, 0x44, bytes.fromhex("8c44"))
        assert t.read_block(BAT, 0x44) == bytes.fromhex("8c44")  # echo, no data
        assert emulator(t).dataflash.value(COV_REC) == 4300  # type: ignore[union-attr]


def test_entries_without_a_published_address_are_refused_by_name() -> None:
    with open_transport("emulated:bq40z50?speed=0&security=unsealed") as t:
        df = flash(t, "bq40z50")
        with pytest.raises(AccessDenied, match="address unknown for this chip in profile bq40z50"):
            df.read("Protections:COV:Threshold Rec Temp")
        assert df.read("Calibration:Voltage:Cell Gain") == 0  # addressed (RRC driver): readable
        assert df.write("Calibration:Temperature:External1 Temp Offset", "-0.3") == pytest.approx(-0.3)
        assert df.read("Settings:Protection:Enabled Protections A") == 0xFF


def test_a_write_that_does_not_stick_is_a_verify_error(unsealed: Transport, monkeypatch: pytest.MonkeyPatch) -> None:
    memory = emulator(unsealed).dataflash
    assert memory is not None
    monkeypatch.setattr(memory, "write", lambda address, data: False)  # worn-out flash: writes are lost
    with pytest.raises(VerifyError, match=r"Protections:CUV:Threshold: wrote 28 0A at 0x4481 but read back C4 09"):
        flash(unsealed).write("Protections:CUV:Threshold", 2600)


def test_the_profile_write_delay_is_waited_after_each_block() -> None:
    with open_transport("emulated:bq40z50?speed=0&security=unsealed") as t:
        waits: list[float] = []
        df = DataFlash(Gauge(Battery(t), "bq40z50", sleep=waits.append))
        df.write("Calibration:Voltage:Cell Gain", 12173)
        assert waits == [0.1]  # PX4: 100 ms after a data-flash write (bq40z50 profile timing)


def test_consecutive_block_reads_advance_through_the_flash(unsealed: Transport) -> None:
    t = unsealed
    t.max_block = 34
    t.write_block(BAT, 0x44, bytes.fromhex("8144"))
    first = t.read_block(BAT, 0x44)
    second = t.read_block(BAT, 0x44)  # RRC BQ40Z50R1 driver: the pointer moves on after a read
    assert first[:2] == bytes.fromhex("8144") and second[:2] == (0x4481 + 32).to_bytes(2, "little")
    assert flash(unsealed).read("Protections:CUV:Threshold") == 2500  # the driver re-selects every time


# --- protection behaviour follows data flash ----------------------------------------------------------------


def _time_to_cov(cov_mv: int | None) -> float:
    with open_transport("emulated:bq4050?speed=0&soc=0.85&seed=2&security=unsealed") as t:
        df = flash(t)
        if cov_mv is not None:
            for suffix in ("Low Temp", "Standard Temp", "High Temp", "Rec Temp"):
                df.write(f"Protections:COV:Threshold {suffix}", cov_mv)
        vp = emulator(t).vpack
        vp.load = ConstantCurrent(1.5)
        took = vp.run_until(lambda v: v.protections.tripped("COV"), limit_s=4 * 3600)
        words = df.gauge.status_words()
        assert words["SafetyStatus"].decoded is not None and words["SafetyStatus"].decoded["COV"]
        op = words["OperationStatus"].decoded
        assert op is not None and op["XCHG"] and not op["CHG"]
        return took


def test_lowering_cov_in_data_flash_makes_the_gauge_trip_earlier() -> None:
    default = _time_to_cov(None)  # 4300 mV, as configured for a 4.2 V chemistry
    lowered = _time_to_cov(4150)
    lower = _time_to_cov(4100)
    assert lower < lowered < default


def test_an_enable_bit_in_data_flash_turns_a_protection_off(unsealed: Transport) -> None:
    df = flash(unsealed)
    params = emulator(unsealed).vpack.protections.params
    df.write("Settings:Protection:Enabled Protections D", 0x03)  # UTC (bit 2) and UTD (bit 3) off
    assert "UTC" not in params.enabled and "UTD" not in params.enabled
    df.write("Settings:Protection:Enabled Protections D", 0x0F)
    assert {"UTC", "UTD"} <= params.enabled


# --- golden images ------------------------------------------------------------------------------------------


@pytest.fixture
def golden(tmp_path: Path) -> Path:
    """A golden image exported from a configured pack (three entries differ from a fresh pack)."""
    with open_transport("emulated:bq4050?speed=0&security=unsealed&seed=1") as t:
        df = flash(t)
        df.write(COV_REC, 4150)
        df.write("Protections:CUV:Threshold", 2600)
        df.write("Protections:OCD1:Threshold", -9000)
        df.write("Settings:Protection:Enabled Protections C", 0x3C)
        path = tmp_path / "golden.json"
        df.export_image(path)
    return path


def test_image_file_format(golden: Path) -> None:
    doc = json.loads(golden.read_text())
    assert doc["format"] == "smartbatt-dataflash-image" and doc["version"] == 1 and doc["profile"] == "bq4050"
    assert doc["device"]["device_type"] == "0x9E34"
    entry = next(e for e in doc["entries"] if e["key"] == COV_REC)
    assert entry == {"key": COV_REC, "address": "0x448C", "type": "I2", "unit": "mV", "value": 4150}
    image = load_image(golden, load_profile("bq4050"))
    assert image.values["Protections:OCD1:Threshold"] == -9000 and len(image.values) == 31


def test_dry_run_shows_the_differences_and_writes_nothing(golden: Path, tmp_path: Path) -> None:
    with open_transport("emulated:bq4050?speed=0&security=unsealed&seed=2") as t:
        df = flash(t)
        records = log(t)
        result = df.import_image(golden, dry_run=True, backup_dir=tmp_path / "bk")
        changed = {c.key: (c.old, c.new) for c in result.plan.changes}
        assert changed == {
            "Protections:CUV:Threshold": (2500, 2600),
            COV_REC: (4300, 4150),
            "Protections:OCD1:Threshold": (-6000, -9000),
            "Settings:Protection:Enabled Protections C": (0xFF, 0x3C),
        }
        assert len(result.plan.unchanged) == 27 and result.dry_run and result.written == ()
        assert df_writes(records) == [] and not (tmp_path / "bk").exists()


def test_import_backs_up_writes_and_verifies(golden: Path, tmp_path: Path) -> None:
    with open_transport("emulated:bq4050?speed=0&security=unsealed&seed=2") as t:
        df = flash(t)
        seen: list[tuple[int, int, str]] = []
        result = df.import_image(golden, backup_dir=tmp_path / "bk", progress=lambda *a: seen.append(a))
        assert len(result.written) == 4 and result.backup is not None
        assert [s[0] for s in seen] == [0, 1, 2, 3, 4] and seen[-1][2] == "done"
        backup = load_image(result.backup, df.profile)
        assert backup.values[COV_REC] == 4300 and backup.values["Protections:OCD1:Threshold"] == -6000
        assert df.read_all() == load_image(golden, df.profile).values
        assert not list((tmp_path / "bk").glob("*.journal.json"))
        again = df.import_image(golden, backup_dir=tmp_path / "bk")
        assert again.written == () and again.backup is None  # nothing left to do


@pytest.mark.parametrize("fault", ["stuck", "nack_every"])
def test_an_interrupted_import_is_reported_and_completed_by_a_second_run(
    golden: Path, tmp_path: Path, fault: str
) -> None:
    folder = tmp_path / "bk"
    with open_transport("emulated:bq4050?speed=0&security=unsealed&seed=2") as t:
        df = flash(t)
        faults = t.faults  # type: ignore[attr-defined]

        def inject(done: int, total: int, key: str) -> None:
            if done == 2:  # two entries written and verified, then the harness fails
                if fault == "stuck":
                    faults.stuck = True
                else:
                    faults.nack_every = 1

        with pytest.raises(InterruptedWrite) as err:
            df.import_image(golden, backup_dir=folder, progress=inject)
        e = err.value
        assert len(e.done) == 2 and e.in_doubt is not None and len(e.remaining) == 1
        assert set(e.done) | {e.in_doubt} | set(e.remaining) == {
            "Protections:CUV:Threshold",
            COV_REC,
            "Protections:OCD1:Threshold",
            "Settings:Protection:Enabled Protections C",
        }
        assert isinstance(e.cause, BusBusy if fault == "stuck" else NoAcknowledge)
        message = str(e)
        assert (
            "interrupted at" in message
            and "Written and verified: 2" in message
            and "Run the same import again" in message
        )
        for key in (*e.done, e.in_doubt, *e.remaining):
            assert key in message
        journal = Path(e.journal or "")
        assert journal.is_file() and json.loads(journal.read_text())["written"] == list(e.done)
        backups = list(folder.glob("*.backup.json"))
        assert len(backups) == 1

        memory = emulator(t).dataflash
        assert memory is not None
        for key in e.done:
            assert memory.value(key) == load_image(golden, df.profile).values[key]  # really written
        for key in e.remaining:
            assert memory.value(key) != load_image(golden, df.profile).values[key]  # really not

        faults.stuck, faults.nack_every = False, 0  # the harness is fixed
        result = df.import_image(golden, backup_dir=folder)
        assert result.written_before == e.done
        assert set(result.written) == {e.in_doubt, *e.remaining} - set(result.plan.unchanged)
        assert set(e.done) <= set(result.plan.unchanged)  # skipped: already at their target
        assert result.backup == backups[0]  # the backup of what was there before the first run
        assert load_image(backups[0], df.profile).values[COV_REC] == 4300
        assert df.read_all() == load_image(golden, df.profile).values
        assert not journal.exists()


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.update(profile="bq40z50"), "image is for 'bq40z50', the pack is bq4050"),
        (lambda d: d.update(format="other"), "not a smartbatt-dataflash-image file"),
        (lambda d: d.update(version=2), "image version 2"),
        (lambda d: d["entries"].append({"key": "Nope:Nope:Nope", "value": 1}), "not in the bq4050 data-flash map"),
        (lambda d: d["entries"][0].update(value=99999), "outside I2 range"),
        (lambda d: d["entries"][0].update(address="0x4000"), "at 0x4000 in the file, 0x4481 here"),
        (lambda d: d["entries"][0].update(type="U2"), "is U2 in the file, I2 here"),
        (lambda d: d["entries"].append(dict(d["entries"][0])), "appears twice"),
    ],
)
def test_broken_images_are_refused_with_the_reason(golden: Path, edit: object, match: str) -> None:
    doc = json.loads(golden.read_text())
    edit(doc)  # type: ignore[operator]
    golden.write_text(json.dumps(doc))
    with pytest.raises(FileFormatError, match=match):
        load_image(golden, load_profile("bq4050"))


def test_a_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{nope")
    with pytest.raises(FileFormatError, match="not a JSON image"):
        load_image(path, load_profile("bq4050"))
    with pytest.raises(FileFormatError, match="cannot read"):
        load_image(tmp_path / "missing.json", load_profile("bq4050"))


# --- FlashStream ----------------------------------------------------------------------------------------------


@pytest.fixture
def golden_fs(tmp_path: Path) -> Path:
    with open_transport("emulated:bq4050?speed=0&security=unsealed&seed=1") as t:
        df = flash(t)
        df.write(COV_REC, 4150)
        path = tmp_path / "golden.df.fs"
        assert df.export_flashstream(path) == 3
    return path


def test_flashstream_export_is_ti_format_with_compares(golden_fs: Path) -> None:
    text = golden_fs.read_bytes().decode("ascii")
    assert "\r\n" in text and text.startswith("; smartbatt data-flash export, profile bq4050")
    lines = [line for line in text.splitlines() if line and not line.startswith(";")]
    assert lines[0].startswith("SWB: 16 44 4D 44 ") and len(lines[0].split()) == 2 + 2 + 32 + 1
    assert lines[1] == "SWB: 16 44 4D 44" and lines[2].startswith("SCL: 16 44 22 4D 44 ")


def test_flashstream_dry_run_lists_the_writes_without_a_device(golden_fs: Path) -> None:
    steps = plan_flashstream(golden_fs, load_profile("bq4050"))
    writes = [s for s in steps if s.writes and "write data flash" in s.text]
    assert [s.line for s in writes] == [3, 6, 9]
    assert "Protections:CUV:Threshold" in writes[1].text and "(20 entries)" in writes[1].text
    with open_transport("emulated:bq4050?speed=0&security=unsealed") as t:
        records = log(t)
        result = flash(t).run_flashstream(golden_fs, dry_run=True)
        assert result.dry_run and result.executed == 0 and result.writes == 6 and result.compares == 3
        assert records == []


def test_flashstream_programs_another_pack(golden_fs: Path) -> None:
    with open_transport("emulated:bq4050?speed=0&security=unsealed&seed=2") as t:
        df = flash(t)
        progress: list[int] = []
        result = df.run_flashstream(golden_fs, progress=lambda d, n, w: progress.append(d))
        assert result.executed == 9 and progress[-1] == 9
        assert df.read(COV_REC) == 4150
        assert emulator(t).vpack.protections.params["COV:Threshold Rec Temp"] == 4150


def test_a_failed_compare_stops_and_names_the_line(golden_fs: Path) -> None:
    lines = golden_fs.read_text().splitlines()
    assert lines[4].startswith("SCL:")
    fields = lines[4].split()
    fields[-1] = f"{(int(fields[-1], 16) ^ 0xFF):02X}"
    lines[4] = " ".join(fields)
    golden_fs.write_text("\r\n".join(lines) + "\r\n")
    with (
        open_transport("emulated:bq4050?speed=0&security=unsealed&seed=2") as t,
        pytest.raises(VerifyError, match=r"golden\.df\.fs:5: SCL: read 34 bytes .* the file expects 34 bytes"),
    ):
        flash(t).run_flashstream(golden_fs)


def test_a_bus_error_stops_the_run_and_names_the_line(golden_fs: Path) -> None:
    with open_transport("emulated:bq4050?speed=0&security=unsealed&seed=2") as t:
        df = flash(t)

        def jam(done: int, total: int, what: str) -> None:
            if done == 3:
                t.faults.stuck = True  # type: ignore[attr-defined]

        with pytest.raises(InterruptedWrite, match=r"golden\.df\.fs:6: SWB: stopped by BusBusy") as err:
            df.run_flashstream(golden_fs, progress=jam)
        assert err.value.done == ("line 3", "line 4", "line 5") and err.value.in_doubt == "line 6"
        assert err.value.remaining == ("line 7", "line 8", "line 9", "line 10", "line 11")


def test_i2c_flashstream_files_are_refused_before_anything_runs(tmp_path: Path) -> None:
    path = tmp_path / "i2c.bq.fs"
    path.write_text("W: AA 3E 02 00\nC: AA 3E 02 00\n")
    with pytest.raises(AccessDenied, match=r"i2c\.bq\.fs:1: W: lines are for I2C gauges"):
        plan_flashstream(path)
    bad = tmp_path / "bad.df.fs"
    bad.write_text("SWB: 16 44 00 40 01\nQQ: 1\n")
    with pytest.raises(FileFormatError, match=r"bad\.df\.fs:2"):
        plan_flashstream(bad)


# --- .gg.csv ----------------------------------------------------------------------------------------------------


def test_gg_csv_export_and_import_with_a_diff_first(tmp_path: Path) -> None:
    path = tmp_path / "pack.gg.csv"
    with open_transport("emulated:bq4050?speed=0&security=unsealed&seed=1") as t:
        df = flash(t)
        df.write(COV_REC, 4150)
        df.write("Settings:Protection:Enabled Protections A", 0xCE)
        df.export_gg(path)
    text = path.read_text(encoding="utf-8")
    assert "* Device Number 9E34" in text
    assert '"Protections","COV","Threshold Rec Temp","4150","mV"' in text
    assert '"Settings","Protection","Enabled Protections A","ce","hex"' in text
    with path.open("a", encoding="utf-8") as f:
        f.write('"Calibration","Current Offset","CC Offset","0","-"\r\n')  # a row the profile does not map
    with open_transport("emulated:bq4050?speed=0&security=unsealed&seed=2") as t:
        df = flash(t)
        records = log(t)
        preview = df.import_gg(path, dry_run=True, backup_dir=tmp_path)
        assert {c.key for c in preview.plan.changes} == {COV_REC, "Settings:Protection:Enabled Protections A"}
        assert preview.plan.skipped == (("Calibration:Current Offset:CC Offset", "not in the bq4050 data-flash map"),)
        assert df_writes(records) == []
        result = df.import_gg(path, backup_dir=tmp_path)
        assert set(result.written) == {COV_REC, "Settings:Protection:Enabled Protections A"}
        assert df.read(COV_REC) == 4150


def test_gg_csv_for_another_chip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.gg.csv"
    path.write_text(
        "* Texas Instruments Data Flash File\n* Device Number 4500\n"
        "* Field Order: Class name, Subclass name, Parameter name, Parameter Value, Display Units\n"
        '"Protections","CUV","Threshold","2500","mV"\n'
    )
    with (
        open_transport("emulated:bq4050?speed=0&security=unsealed") as t,
        pytest.raises(FileFormatError, match="Device Number 4500; bq4050 is 9E34"),
    ):
        flash(t).import_gg(path, dry_run=True)


def test_gg_rows_without_an_address_are_skipped_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "r1.gg.csv"
    path.write_text(
        "* Device Number 4500\n"
        '"Calibration","Voltage","Cell Gain","12173","-"\n'
        '"Protections","CUV","Threshold","2500","mV"\n'
    )
    with open_transport("emulated:bq40z50?speed=0&security=unsealed") as t:
        result = flash(t, "bq40z50").import_gg(path, dry_run=True, backup_dir=tmp_path)
        assert [c.key for c in result.plan.changes] == ["Calibration:Voltage:Cell Gain"]
        assert result.plan.skipped == (
            ("Protections:CUV:Threshold", "address unknown for this chip in profile bq40z50"),
        )


def test_flashstream_runs_on_a_pack_detected_as_generic(golden_fs: Path) -> None:
    with open_transport("emulated:bq4050?speed=0&security=unsealed&seed=2") as t:
        df = DataFlash(Gauge(Battery(t), "generic-sbs", sleep=no_sleep))  # 34-byte blocks all the same
        assert df.run_flashstream(golden_fs).executed == 9
        assert emulator(t).dataflash.value(COV_REC) == 4150  # type: ignore[union-attr]
