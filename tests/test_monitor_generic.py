"""Generic cell models built from the published chemistry data."""

from __future__ import annotations

import pytest

from smartbatt.emulator.chemistry import load_chemistry
from smartbatt.errors import ProfileError
from smartbatt.monitor.generic import chemistry_for, generic_model


@pytest.mark.parametrize("name", ["nmc", "lco", "lfp"])
def test_model_spans_the_chemistry_window_and_scales_with_capacity(name: str) -> None:
    chem = load_chemistry(name)
    small, large = generic_model(name, 2.0), generic_model(name, 4.0)
    assert small.v_min_v == chem.v_min and small.v_max_v == chem.v_max
    assert small.ocv(0.0) < small.ocv(0.5) < small.ocv(1.0)
    assert small.ocv(1.0) == pytest.approx(chem.v_max, abs=0.05)
    # a cell of twice the capacity has half the resistance (specific resistance in ohm·Ah)
    assert large.r0(0.5) == pytest.approx(small.r0(0.5) / 2)
    assert large.capacity_ah == 4.0
    # resistance rises in the cold (Arrhenius)
    assert small.r0(0.5, temperature_c=0.0) > small.r0(0.5, temperature_c=25.0)


@pytest.mark.parametrize(
    ("text", "chemistry"), [("LION", "nmc"), ("LiP", "lco"), ("LiFePO4", "lfp"), ("LFP", "lfp"), ("NiMH", "nmc")]
)
def test_device_chemistry_maps_to_a_chemistry(text: str, chemistry: str) -> None:
    assert chemistry_for(text) == chemistry


def test_unknown_chemistry_is_a_typed_error() -> None:
    with pytest.raises(ProfileError):
        generic_model("nicd")
