"""bqStudio .gg.csv exports: parse (quoted and unquoted), match to a profile, write, round trip."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartbatt.errors import DecodeError, FileFormatError, RangeError
from smartbatt.gauge.ggcsv import format_gg, import_gg, parse_gg, read_gg, write_gg
from smartbatt.profiles.loader import load_profile

# Same header and quoting as a bqStudio export of a bq40z50-R1 (see smartbatt/gauge/ggcsv.py).
QUOTED = """\
* Texas Instruments Data Flash File
* File created Wed Jun 11 14:53:00 2025
*
* Device Number 4500
* Firmware Version 2.11
* Build Number 52
* Order Number 0
*
* bqz Device Number 4500
* bqz Firmware Version 2.11
* bqz Build Number 52
*
* Field Order: Class name, Subclass name, Parameter name, Parameter Value, Display Units
"Settings","Protection","Enabled Protections A","ff","hex"
"Protections","CUV","Threshold","2800","mV"
"Protections","CUV","Delay","1","s"
"Protections","OCD1","Threshold","-6000","mA"
"Protections","OTC","Threshold","55.0","°C"
"SBS Configuration","Data","Device Name","bq40z50-R1","-"
"Gas Gauging","Design","Design Voltage","11100","mV"
"""

# Older exports: unquoted fields, "Units" instead of "Display Units", degC.
UNQUOTED = """\
* Texas Instruments Data Flash File
* Device Number 4500
* Field Order: Class name, Subclass name, Parameter name, Parameter Value, Units
Protections,CUV,Threshold,2800,mV
Protections,OTC,Threshold,55.0,degC
"""


@pytest.fixture(scope="module")
def bq40z50():
    return load_profile("bq40z50")


def test_parse_quoted_export(bq40z50):
    gg = parse_gg(QUOTED, "pack.gg.csv")
    assert (gg.device_number, gg.firmware_version, gg.build_number) == (0x4500, "2.11", "52")
    assert gg.header[0] == "Texas Instruments Data Flash File"
    assert len(gg.rows) == 7
    assert gg.rows[0].key == "Settings:Protection:Enabled Protections A"
    assert gg.rows[0].line == 14
    result = import_gg(gg, bq40z50)
    assert dict(result.values) == {
        "Settings:Protection:Enabled Protections A": 0xFF,
        "Protections:CUV:Threshold": 2800,
        "Protections:CUV:Delay": 1,
        "Protections:OCD1:Threshold": -6000,
        "Protections:OTC:Threshold": 55.0,
        "SBS Configuration:Data:Device Name": "bq40z50-R1",
        "Gas Gauging:Design:Design Voltage": 11100,
    }
    assert result.unknown == ()


def test_parse_older_unquoted_export(bq40z50):
    result = import_gg(parse_gg(UNQUOTED), bq40z50)
    assert dict(result.values) == {"Protections:CUV:Threshold": 2800, "Protections:OTC:Threshold": 55.0}


def test_unknown_parameter_is_an_error_naming_the_line(bq40z50):
    text = QUOTED + '"Calibration","Current Offset","CC Offset","0","-"\n'
    gg = parse_gg(text, "pack.gg.csv")
    with pytest.raises(FileFormatError) as err:
        import_gg(gg, bq40z50)
    assert (err.value.file, err.value.line) == ("pack.gg.csv", 21)
    assert err.value.reason == "Calibration:Current Offset:CC Offset: not in the bq40z50 data-flash map"
    relaxed = import_gg(gg, bq40z50, strict=False)
    assert [r.key for r in relaxed.unknown] == ["Calibration:Current Offset:CC Offset"]
    assert len(relaxed.values) == 7


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ('"Protections","CUV","Threshold","abc","mV"', "Protections:CUV:Threshold: 'abc' is not a number"),
        ('"Protections","CUV","Threshold","40000","mV"', "Protections:CUV:Threshold: raw value 40000 outside I2 range"),
        ('"Protections","CUV","Delay","1.5","s"', "Protections:CUV:Delay: 1.5 is not a whole number"),
        ('"Protections","CUV","Threshold","2800","mA"', "Protections:CUV:Threshold: unit 'mA', but bq40z50 says 'mV'"),
        (
            '"Settings","Protection","Enabled Protections A","1ff","hex"',
            "Settings:Protection:Enabled Protections A: 511",
        ),
        (
            '"Settings","Protection","Enabled Protections A","xx","hex"',
            "Settings:Protection:Enabled Protections A: 'xx' is not a hex",
        ),
        (
            '"SBS Configuration","Data","Device Name","' + "x" * 21 + '","-"',
            "SBS Configuration:Data:Device Name: text longer",
        ),
    ],
)
def test_bad_values_name_file_line_and_parameter(bq40z50, row, reason):
    text = "* Device Number 4500\n" + row + "\n"
    with pytest.raises(FileFormatError) as err:
        import_gg(parse_gg(text, "bad.gg.csv"), bq40z50)
    assert err.value.line == 2
    assert err.value.reason.startswith(reason), err.value.reason


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ('"A","B","C","1"\n', 1, "expected 5 fields (class, subclass, name, value, unit), got 4"),
        ('"A","","C","1","-"\n', 1, "empty subclass"),
        ('"A","B","C","1","-"\n"A","B","C","2","-"\n', 2, "A:B:C already given on line 1"),
        (
            "* Field Order: Name, Value\n" + '"A","B","C","1","-"\n',
            1,
            "unexpected field order 'Field Order: Name, Value'",
        ),
        ('"A","B","C","1\n', 1, "not a CSV row: unexpected end of data"),
        ("* only a header\n", None, "no data rows"),
        ("* Device Number zz\n" + '"A","B","C","1","-"\n', None, "Device Number 'zz' is not hexadecimal"),
    ],
)
def test_malformed_files(text, line, reason):
    with pytest.raises(FileFormatError) as err:
        parse_gg(text, "x.gg.csv")
    assert (err.value.file, err.value.line, err.value.reason) == ("x.gg.csv", line, reason)


def test_wrong_device_number_is_an_error_unless_relaxed(bq40z50):
    gg = parse_gg(QUOTED.replace("Device Number 4500", "Device Number 9E34", 1))
    with pytest.raises(FileFormatError) as err:
        import_gg(gg, bq40z50)
    assert err.value.reason == "file is for Device Number 9E34; bq40z50 is 4500"
    assert len(import_gg(gg, bq40z50, strict=False).values) == 7


def test_write_matches_bqstudio_layout_and_round_trips(bq40z50, tmp_path):
    values = dict(import_gg(parse_gg(QUOTED), bq40z50).values)
    created = datetime(2025, 6, 11, 14, 53, 0)
    text = format_gg(bq40z50, values, created=created, firmware_version="2.11", build_number="52", newline="\n")
    lines = text.splitlines()
    assert lines[:4] == [
        "* Texas Instruments Data Flash File",
        "* File created Wed Jun 11 14:53:00 2025",
        "*",
        "* Device Number 4500",
    ]
    assert lines[12] == "* Field Order: Class name, Subclass name, Parameter name, Parameter Value, Display Units"
    assert '"Protections","OTC","Threshold","55.0","°C"' in lines
    assert '"Settings","Protection","Enabled Protections A","ff","hex"' in lines
    assert '"SBS Configuration","Data","Device Name","bq40z50-R1","-"' in lines
    # rows follow the profile's data-flash order, not the input order
    keys = [e.key for e in bq40z50.data_flash if e.key in values]
    assert [row.key for row in parse_gg(text).rows] == keys
    path = tmp_path / "out.gg.csv"
    write_gg(path, bq40z50, values, created=created)
    assert path.read_bytes().count(b"\r\n") == len(lines)
    again = import_gg(read_gg(path), bq40z50)
    assert dict(again.values) == values


def test_read_cp1252_export(tmp_path, bq40z50):
    path = tmp_path / "old.gg.csv"
    path.write_bytes(UNQUOTED.replace("degC", "°C").encode("cp1252"))
    assert dict(import_gg(read_gg(path), bq40z50).values)["Protections:OTC:Threshold"] == 55.0


def test_read_missing_file(tmp_path):
    with pytest.raises(FileFormatError) as err:
        read_gg(tmp_path / "nope.gg.csv")
    assert err.value.line is None and err.value.reason.startswith("cannot read:")


def test_format_rejects_unknown_names_and_bad_values(bq40z50):
    with pytest.raises(DecodeError, match="no data-flash entry 'X:Y:Z'"):
        format_gg(bq40z50, {"X:Y:Z": 1})
    with pytest.raises(RangeError):
        format_gg(bq40z50, {"Protections:CUV:Delay": 256})


@given(
    st.integers(-32768, 32767),
    st.integers(0, 255),
    st.integers(-3276, 3276).map(lambda t: t / 10),
    st.integers(0, 0xFF),
)
def test_values_round_trip_through_gg_text(threshold, delay, temperature, bits):
    bq = load_profile("bq40z50")
    values = {
        "Protections:CUV:Threshold": threshold,
        "Protections:CUV:Delay": delay,
        "Protections:OTC:Threshold": temperature,
        "Settings:Protection:Enabled Protections A": bits,
    }
    text = format_gg(bq, values, created=datetime(2024, 1, 1))
    back = import_gg(parse_gg(text), bq).values
    assert back["Protections:CUV:Threshold"] == threshold
    assert back["Protections:CUV:Delay"] == delay
    assert back["Protections:OTC:Threshold"] == pytest.approx(temperature)
    assert back["Settings:Protection:Enabled Protections A"] == bits
