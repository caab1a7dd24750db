"""The emulated gauge's protection state machine: TI-style first-level protections and permanent failures.

Each protection is a :class:`Rule` — data, not code: which measured quantity it watches, the
data-flash parameters that hold its threshold, delay and recovery, which FET a trip opens and which
BatteryStatus alarm its alert raises. The engine (:class:`ProtectionState`) runs every rule the way
the TI Impedance Track gauges describe it in their TRMs (bq40z50-R4 TRM SLUUCH2 §2, bq40z80 TRM
SLUUBT5C §3, BQ4050 TRM SLUUAQ3A §2; see ../shared/reference/ti_gauges.md §5):

* **Normal** — condition false: ``SafetyAlert[x] = 0``, the delay timer restarts;
* **Alert** — condition true: ``SafetyAlert[x] = 1`` (and the rule's BatteryStatus alarm, TCA or TDA);
* **Trip** — condition true for the rule's *Delay*: ``SafetyAlert[x] = 0``, ``SafetyStatus[x] = 1``,
  ``OperationStatus[XCHG]``/``[XDSG]`` set: the gauge opens the CHG or DSG FET and the physics obeys;
* **Recovery** — ``SafetyStatus[x] = 1`` and the recovery condition true for the *Recovery Delay*.

Permanent failures (:data:`PF_RULES`) trip the same way into ``PFStatus`` but never recover: both FETs
stay open until ``PermanentFailDataReset`` is issued, which the device only accepts in FULL ACCESS.

Thresholds are read from a :class:`ProtectionParameters` object at every evaluation, keyed by the TI
data-flash names (``COV:Threshold Rec Temp``), so lowering a threshold makes the protection trip
earlier; the chip-profile loader will later fill it from the data-flash map.

Defaults: where a default was found in a TI TRM it is cited next to the value. The bq40z50 TRM's own
protection data-flash tables were not retrievable during this work; such values are the TI defaults as
commonly reproduced for bq40z50-family gauges and are marked ``UNCONFIRMED`` — the behaviour rules
above are confirmed, the exact numbers are not.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

#: TI temperature ranges of the advanced charging algorithm (ChargingStatus bits 0–6, ti_gauges.md §5.4)
#: and the data-flash suffix each maps to for temperature-dependent thresholds (COV). UT and LT use the
#: "Low Temp" set, HT and OT the "High Temp" set (BQ41Z50 TRM SLUUCP8 "Cell Overvoltage Protection").
RANGE_SUFFIX: Mapping[str, str] = {
    "UT": "Low Temp",
    "LT": "Low Temp",
    "STL": "Standard Temp Low",
    "RT": "Rec Temp",
    "STH": "Standard Temp High",
    "HT": "High Temp",
    "OT": "High Temp",
}


class Quantity(enum.Enum):
    """What a rule watches (all in the gauge's measured units)."""

    MAX_CELL_MV = "max cell voltage (mV)"
    MIN_CELL_MV = "min cell voltage (mV)"
    CURRENT_MA = "Current() (mA, + = charge)"
    MAX_TEMP_C = "max cell temperature (°C)"
    MIN_TEMP_C = "min cell temperature (°C)"
    CELL_DELTA_MV = "max − min cell voltage (mV)"


class When(enum.Enum):
    """In which gauge mode a rule's trip condition is evaluated."""

    ANY = "any"
    #: CHARGE mode (BatteryStatus[DSG] = 0).
    CHARGING = "charging"
    #: DISCHARGE or RELAX mode (BatteryStatus[DSG] = 1).
    NOT_CHARGING = "not charging"
    #: RELAX mode only (|Current()| below the quit current for the relax time).
    RELAXED = "relaxed"


class Fet(enum.Flag):
    """FETs a trip opens."""

    NONE = 0
    CHG = enum.auto()
    DSG = enum.auto()
    BOTH = CHG | DSG


@dataclass(frozen=True)
class Param:
    """One data-flash parameter of the protection set."""

    #: ``Subclass:Name`` as the TI TRM spells it (class "Protections" or "Permanent Fail" implied).
    key: str
    default: float
    unit: str
    minimum: float
    maximum: float
    #: where the default comes from.
    source: str


_UNC = "UNCONFIRMED: bq40z50 TRM protection DF table not retrieved; common TI default"

#: The parameters of :data:`RULES` and :data:`PF_RULES`, with their defaults.
PARAMS: tuple[Param, ...] = (
    # Cell undervoltage, SLUUCH2 §2.2 (behaviour); values UNCONFIRMED.
    Param("CUV:Threshold", 2500, "mV", 0, 32767, _UNC),
    Param("CUV:Delay", 2, "s", 0, 255, _UNC),
    Param("CUV:Recovery", 3000, "mV", 0, 32767, _UNC),
    # Cell overvoltage by temperature range, SLUUCP8 / SLUUD50 COV tables (behaviour); values UNCONFIRMED.
    *(Param(f"COV:Threshold {r}", 4300, "mV", 0, 32767, _UNC) for r in sorted(set(RANGE_SUFFIX.values()))),
    Param("COV:Delay", 2, "s", 0, 255, _UNC),
    *(Param(f"COV:Recovery {r}", 3900, "mV", 0, 32767, _UNC) for r in sorted(set(RANGE_SUFFIX.values()))),
    # Overcurrent in charge, two tiers, SLUUCH2 §2.5 (behaviour). BQ28Z620 TRM SLUUCO9A documents a
    # 6000 mA OCC threshold; the bq40z50 tier values and delays are UNCONFIRMED.
    Param("OCC1:Threshold", 6000, "mA", -32768, 32767, "SLUUCO9A OCC:Threshold 6000 mA (BQ28Z620)"),
    Param("OCC1:Delay", 6, "s", 0, 255, _UNC),
    Param("OCC2:Threshold", 8000, "mA", -32768, 32767, _UNC),
    Param("OCC2:Delay", 3, "s", 0, 255, _UNC),
    # Recovery needs a current reversal (a discharge), as on the BQ76942 (SLUUBY1B OCC:Recovery
    # Threshold −200 mA); bq40z50 value UNCONFIRMED. Recovery delay 5 s: SLUUCO9A OCC:Recovery Delay.
    Param("OCC:Recovery Threshold", -200, "mA", -32768, 32767, "SLUUBY1B (BQ76942) −200 mA; bq40z50 UNCONFIRMED"),
    Param("OCC:Recovery Delay", 5, "s", 0, 255, "SLUUCO9A OCC:Recovery Delay 5 s (BQ28Z620)"),
    # Overcurrent in discharge, SLUUCH2 §2.6 (behaviour); values UNCONFIRMED (mirror of OCC).
    Param("OCD1:Threshold", -6000, "mA", -32768, 32767, _UNC),
    Param("OCD1:Delay", 6, "s", 0, 255, _UNC),
    Param("OCD2:Threshold", -8000, "mA", -32768, 32767, _UNC),
    Param("OCD2:Delay", 3, "s", 0, 255, _UNC),
    Param("OCD:Recovery Threshold", 200, "mA", -32768, 32767, _UNC),
    Param("OCD:Recovery Delay", 5, "s", 0, 255, _UNC),
    # Short circuit in discharge: an AFE comparator (SLUUCH2 §2.7.3) acting in microseconds; the emulator
    # trips it before the current flows. The AFE register encoding (SLUUCN4A ASCD:Threshold 1 = 0x77)
    # is not modelled: the threshold is given as a current (chosen: 80 A, i.e. 80 mV on a 1 mΩ sense
    # resistor). Time-based recovery after 5 s as the BQ28Z620 AOLD:Recovery (SLUUCO9A).
    Param("ASCD:Threshold", -80000, "mA", -200000, 0, "chosen (AFE encoding not modelled)"),
    Param("ASCD:Recovery", 5, "s", 0, 255, "SLUUCO9A AOLD:Recovery 5 s (BQ28Z620), by analogy"),
    # Temperatures in °C (TI stores 0.1 °C). OTC/OTD values UNCONFIRMED; UTC/UTD from SLUUCO9A (BQ28Z620).
    Param("OTC:Threshold", 55.0, "°C", -40, 150, _UNC),
    Param("OTC:Delay", 2, "s", 0, 255, _UNC),
    Param("OTC:Recovery", 50.0, "°C", -40, 150, _UNC),
    Param("OTD:Threshold", 60.0, "°C", -40, 150, _UNC),
    Param("OTD:Delay", 2, "s", 0, 255, _UNC),
    Param("OTD:Recovery", 55.0, "°C", -40, 150, _UNC),
    Param("UTC:Threshold", 0.0, "°C", -40, 150, "SLUUCO9A UTC:Threshold 0 (0.1 °C)"),
    Param("UTC:Delay", 2, "s", 0, 255, "SLUUCO9A UTC:Delay 2 s"),
    Param("UTC:Recovery", 5.0, "°C", -40, 150, "SLUUCO9A UTC:Recovery 50 (0.1 °C)"),
    Param("UTD:Threshold", 0.0, "°C", -40, 150, "SLUUCO9A UTD:Threshold 0 (0.1 °C)"),
    Param("UTD:Delay", 2, "s", 0, 255, "SLUUCO9A UTD:Delay 2 s"),
    Param("UTD:Recovery", 5.0, "°C", -40, 150, "SLUUCO9A UTD:Recovery 50 (0.1 °C)"),
    # Permanent failures (SLUUCH2 §3.2, §3.3, §3.12 behaviour); values UNCONFIRMED.
    Param("SUV:Threshold", 2200, "mV", 0, 32767, _UNC),
    Param("SUV:Delay", 5, "s", 0, 255, _UNC),
    Param("SOV:Threshold", 4500, "mV", 0, 32767, _UNC),
    Param("SOV:Delay", 5, "s", 0, 255, _UNC),
    Param("VIMR:Delta Threshold", 500, "mV", 0, 32767, _UNC),
    Param("VIMR:Delay", 5, "s", 0, 255, _UNC),
)


class ProtectionParameters:
    """The live protection parameter set, keyed by TI data-flash name (``OCD1:Threshold``).

    Values are validated against each parameter's range when set; unknown keys raise ``KeyError``.
    ``enabled`` holds the names of the enabled protections (TI "Enabled Protections A–D" and
    "Enabled PF A–D"); all rules of this module are enabled by default.
    """

    def __init__(self, overrides: Mapping[str, float] | None = None) -> None:
        self._specs: dict[str, Param] = {p.key: p for p in PARAMS}
        self._values: dict[str, float] = {p.key: float(p.default) for p in PARAMS}
        #: bumped by every successful set, so evaluators can cache resolved thresholds.
        self.version = 0
        self.enabled: set[str] = {r.name for r in (*RULES, *PF_RULES)}
        for key, value in (overrides or {}).items():
            self[key] = value

    def __getitem__(self, key: str) -> float:
        return self._values[key]

    def __setitem__(self, key: str, value: float) -> None:
        spec = self._specs.get(key)
        if spec is None:
            raise KeyError(f"unknown protection parameter {key!r}")
        if not spec.minimum <= value <= spec.maximum:
            raise ValueError(f"{key} = {value} is outside {spec.minimum}..{spec.maximum} {spec.unit}")
        self._values[key] = float(value)
        self.version += 1

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def spec(self, key: str) -> Param:
        return self._specs[key]

    def scale_currents(self, factor: float, keys: Iterable[str]) -> None:
        """Multiply the named current parameters by ``factor`` (a pack integrator's configuration)."""
        for key in keys:
            self[key] = round(self[key] * factor)


@dataclass(frozen=True)
class Rule:
    """One protection: trip condition, delay, recovery and consequences (all data)."""

    name: str
    #: bit position in SafetyAlert/SafetyStatus (or PFAlert/PFStatus for permanent failures).
    bit: int
    quantity: Quantity
    #: True: trips when value ≥ threshold; False: when value ≤ threshold.
    trip_above: bool
    #: parameter key of the threshold; ``{range}`` is replaced by the temperature-range suffix.
    threshold: str
    #: parameter key of the trip delay (s).
    delay: str
    #: parameter key of the recovery threshold (same quantity, opposite direction), or "".
    recovery: str = ""
    #: parameter key of the recovery delay (s); "" = recover at once.
    recovery_delay: str = ""
    #: parameter key of a purely time-based recovery (s), e.g. the AFE short-circuit protection.
    recovery_after: str = ""
    when: When = When.ANY
    opens: Fet = Fet.NONE
    #: BatteryStatus alarm raised while the alert is pending: "TCA", "TDA" or "".
    alarm: str = ""
    #: trip sets BatteryStatus[OTA].
    over_temperature: bool = False
    #: the rule has a SafetyAlert bit (the AFE protections report only in SafetyStatus).
    has_alert: bool = True
    #: AFE hardware protection: evaluated on the requested current before it flows.
    instant: bool = False
    source: str = ""


#: First-level protections (SafetyAlert/SafetyStatus bits: ti_gauges.md §5.1).
RULES: tuple[Rule, ...] = (
    Rule("CUV", 0, Quantity.MIN_CELL_MV, False, "CUV:Threshold", "CUV:Delay", "CUV:Recovery",
         opens=Fet.DSG, alarm="TDA", source="SLUUCH2 §2.2"),
    Rule("COV", 1, Quantity.MAX_CELL_MV, True, "COV:Threshold {range}", "COV:Delay", "COV:Recovery {range}",
         opens=Fet.CHG, alarm="TCA", source="SLUUCH2 §2.4; SLUUCP8 COV table"),
    Rule("OCC1", 2, Quantity.CURRENT_MA, True, "OCC1:Threshold", "OCC1:Delay", "OCC:Recovery Threshold",
         "OCC:Recovery Delay", opens=Fet.CHG, alarm="TCA", source="SLUUCH2 §2.5"),
    Rule("OCC2", 3, Quantity.CURRENT_MA, True, "OCC2:Threshold", "OCC2:Delay", "OCC:Recovery Threshold",
         "OCC:Recovery Delay", opens=Fet.CHG, alarm="TCA", source="SLUUCH2 §2.5"),
    Rule("OCD1", 4, Quantity.CURRENT_MA, False, "OCD1:Threshold", "OCD1:Delay", "OCD:Recovery Threshold",
         "OCD:Recovery Delay", opens=Fet.DSG, alarm="TDA", source="SLUUCH2 §2.6"),
    Rule("OCD2", 5, Quantity.CURRENT_MA, False, "OCD2:Threshold", "OCD2:Delay", "OCD:Recovery Threshold",
         "OCD:Recovery Delay", opens=Fet.DSG, alarm="TDA", source="SLUUCH2 §2.6"),
    # The AFE turns both FETs off on a short circuit (SLUUCH2 §2.7.3); SafetyStatus bit 10 only.
    Rule("ASCD", 10, Quantity.CURRENT_MA, False, "ASCD:Threshold", "", recovery_after="ASCD:Recovery",
         opens=Fet.BOTH, has_alert=False, instant=True, source="SLUUCH2 §2.7.3"),
    Rule("OTC", 12, Quantity.MAX_TEMP_C, True, "OTC:Threshold", "OTC:Delay", "OTC:Recovery",
         when=When.CHARGING, opens=Fet.CHG, alarm="TCA", over_temperature=True, source="SLUUCH2 §2.9"),
    # OTD opens DSG only if FET Options[OTFET] = 1 (SLUUCP8 OTD table); the emulated pack sets it.
    Rule("OTD", 13, Quantity.MAX_TEMP_C, True, "OTD:Threshold", "OTD:Delay", "OTD:Recovery",
         when=When.NOT_CHARGING, opens=Fet.DSG, alarm="TDA", over_temperature=True, source="SLUUCH2 §2.10"),
    Rule("UTC", 26, Quantity.MIN_TEMP_C, False, "UTC:Threshold", "UTC:Delay", "UTC:Recovery",
         when=When.CHARGING, opens=Fet.CHG, source="SLUUBT5C UTC table"),
    Rule("UTD", 27, Quantity.MIN_TEMP_C, False, "UTD:Threshold", "UTD:Delay", "UTD:Recovery",
         when=When.NOT_CHARGING, opens=Fet.DSG, source="SLUUBT5C UTD table; SLUUAQ3A"),
)

#: Permanent failures (PFAlert/PFStatus bits: ti_gauges.md §5.2). They latch; both FETs open.
PF_RULES: tuple[Rule, ...] = (
    Rule("SUV", 0, Quantity.MIN_CELL_MV, False, "SUV:Threshold", "SUV:Delay", opens=Fet.BOTH, alarm="TDA",
         source="SLUUCH2 §3.2"),
    Rule("SOV", 1, Quantity.MAX_CELL_MV, True, "SOV:Threshold", "SOV:Delay", opens=Fet.BOTH, alarm="TCA",
         source="SLUUCH2 §3.3"),
    Rule("VIMR", 11, Quantity.CELL_DELTA_MV, True, "VIMR:Delta Threshold", "VIMR:Delay", when=When.RELAXED,
         opens=Fet.BOTH, source="SLUUCH2 §3.12"),
)


#: the AFE protections :meth:`ProtectionState.check_instant` evaluates.
_INSTANT_RULES = tuple(r for r in RULES if r.instant)


@dataclass(frozen=True)
class ProtectionInputs:
    """What the protections see after one measurement (gauge units)."""

    max_cell_mv: float
    min_cell_mv: float
    current_ma: float
    max_temp_c: float
    min_temp_c: float
    #: gauge in CHARGE mode (BatteryStatus[DSG] = 0).
    charging: bool
    #: gauge in RELAX mode.
    relaxed: bool
    #: ChargingStatus temperature range name (``RT``, ``STL``…), for temperature-dependent thresholds.
    temp_range: str = "RT"

    def value(self, quantity: Quantity) -> float:
        match quantity:
            case Quantity.MAX_CELL_MV:
                return self.max_cell_mv
            case Quantity.MIN_CELL_MV:
                return self.min_cell_mv
            case Quantity.CURRENT_MA:
                return self.current_ma
            case Quantity.MAX_TEMP_C:
                return self.max_temp_c
            case Quantity.MIN_TEMP_C:
                return self.min_temp_c
            case Quantity.CELL_DELTA_MV:
                return self.max_cell_mv - self.min_cell_mv

    def applies(self, when: When) -> bool:
        match when:
            case When.ANY:
                return True
            case When.CHARGING:
                return self.charging
            case When.NOT_CHARGING:
                return not self.charging
            case When.RELAXED:
                return self.relaxed


@dataclass
class _RuleState:
    alert: bool = False
    tripped: bool = False
    #: seconds the trip (or recovery) condition has held.
    timer_s: float = 0.0


#: position of each quantity in the value tuple :meth:`ProtectionState.update` builds once per step.
_QUANTITY_INDEX: Mapping[Quantity, int] = {
    Quantity.MAX_CELL_MV: 0,
    Quantity.MIN_CELL_MV: 1,
    Quantity.CURRENT_MA: 2,
    Quantity.MAX_TEMP_C: 3,
    Quantity.MIN_TEMP_C: 4,
    Quantity.CELL_DELTA_MV: 5,
}
#: position of each mode condition in the tuple :meth:`ProtectionState.update` builds once per step.
_WHEN_INDEX: Mapping[When, int] = {When.ANY: 0, When.CHARGING: 1, When.NOT_CHARGING: 2, When.RELAXED: 3}

#: A rule's parameters resolved for one temperature range: threshold, delay (s), recovery threshold
#: (None: no recovery condition), recovery delay (s), time-based recovery (s; None: not time based).
_Limits = tuple[float, float, float | None, float, float | None]
#: A rule compiled for the step loop: name, state, quantity index, trip_above, mode index, has_alert.
_Compiled = tuple[str, _RuleState, int, bool, int, bool]


def _compile(rules: tuple[Rule, ...], states: dict[str, _RuleState]) -> tuple[_Compiled, ...]:
    return tuple(
        (r.name, states[r.name], _QUANTITY_INDEX[r.quantity], r.trip_above, _WHEN_INDEX[r.when], r.has_alert)
        for r in rules
    )


@dataclass
class ProtectionState:
    """Runs :data:`RULES` and :data:`PF_RULES` against the measurements, step by step.

    The rules are data; for speed (the emulated pack steps every simulated second) they are compiled
    once into tuples and their parameters resolved per temperature range, re-resolved whenever the
    parameter set changes (:attr:`ProtectionParameters.version`). The evaluation is the one the module
    docstring describes.
    """

    params: ProtectionParameters = field(default_factory=ProtectionParameters)
    #: permanent-failure detection enabled (ManufacturingStatus[PF_EN]).
    pf_enabled: bool = True
    _safety: dict[str, _RuleState] = field(default_factory=lambda: {r.name: _RuleState() for r in RULES})
    _pf: dict[str, _RuleState] = field(default_factory=lambda: {r.name: _RuleState() for r in PF_RULES})
    _compiled: tuple[tuple[_Compiled, ...], tuple[_Compiled, ...]] = field(init=False, repr=False, compare=False)
    #: resolved limits per temperature range, for the parameter set (object, version) in ``_limits_of``.
    _limits: dict[str, tuple[tuple[_Limits, ...], tuple[_Limits, ...]]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _limits_of: tuple[ProtectionParameters | None, int] = field(
        init=False, repr=False, compare=False, default=(None, -1)
    )
    #: (charge disabled, discharge disabled), or None when the rule states changed since computed.
    _fets: tuple[bool, bool] | None = field(init=False, repr=False, compare=False, default=None)

    #: (state, bit mask) per rule, for the status words read every step.
    _safety_masks: tuple[tuple[_RuleState, int], ...] = field(init=False, repr=False, compare=False)
    _pf_masks: tuple[tuple[_RuleState, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._compiled = (_compile(RULES, self._safety), _compile(PF_RULES, self._pf))
        self._safety_masks = tuple((self._safety[r.name], 1 << r.bit) for r in RULES)
        self._pf_masks = tuple((self._pf[r.name], 1 << r.bit) for r in PF_RULES)

    # --- evaluation ---------------------------------------------------------------------------

    def _resolve(self, key: str, temp_range: str) -> float:
        if "{range}" in key:
            key = key.replace("{range}", RANGE_SUFFIX.get(temp_range, "Rec Temp"))
        return self.params[key]

    def _rule_limits(self, rule: Rule, temp_range: str) -> _Limits:
        params = self.params
        return (
            self._resolve(rule.threshold, temp_range),
            params[rule.delay] if rule.delay else 0.0,
            self._resolve(rule.recovery, temp_range) if rule.recovery else None,
            params[rule.recovery_delay] if rule.recovery_delay else 0.0,
            params[rule.recovery_after] if rule.recovery_after else None,
        )

    def _limits_for(self, temp_range: str) -> tuple[tuple[_Limits, ...], tuple[_Limits, ...]]:
        """Every rule's limits in ``temp_range``, cached until the parameter set changes."""
        params = self.params
        cached_params, cached_version = self._limits_of
        if cached_params is not params or cached_version != params.version:
            self._limits.clear()
            self._limits_of = (params, params.version)
        limits = self._limits.get(temp_range)
        if limits is None:
            limits = (
                tuple(self._rule_limits(r, temp_range) for r in RULES),
                tuple(self._rule_limits(r, temp_range) for r in PF_RULES),
            )
            self._limits[temp_range] = limits
        return limits

    @staticmethod
    def _beyond(value: float, threshold: float, above: bool) -> bool:
        return value >= threshold if above else value <= threshold

    def update(self, dt_s: float, inputs: ProtectionInputs) -> None:
        """Advance every rule by ``dt_s`` seconds of the measurements ``inputs``."""
        self.update_readings(
            dt_s,
            inputs.max_cell_mv,
            inputs.min_cell_mv,
            inputs.current_ma,
            inputs.max_temp_c,
            inputs.min_temp_c,
            charging=inputs.charging,
            relaxed=inputs.relaxed,
            temp_range=inputs.temp_range,
        )

    def update_readings(
        self,
        dt_s: float,
        max_cell_mv: float,
        min_cell_mv: float,
        current_ma: float,
        max_temp_c: float,
        min_temp_c: float,
        *,
        charging: bool,
        relaxed: bool,
        temp_range: str = "RT",
    ) -> None:
        """:meth:`update` with the :class:`ProtectionInputs` fields passed one by one (the emulated
        pack's per-second path: it saves building the record)."""
        self._fets = None
        values = (max_cell_mv, min_cell_mv, current_ma, max_temp_c, min_temp_c, max_cell_mv - min_cell_mv)
        modes = (True, charging, not charging, relaxed)
        safety_limits, pf_limits = self._limits_for(temp_range)
        safety_rules, pf_rules = self._compiled
        self._run(safety_rules, safety_limits, dt_s, values, modes, latch=False)
        if self.pf_enabled:
            self._run(pf_rules, pf_limits, dt_s, values, modes, latch=True)

    def _run(
        self,
        rules: tuple[_Compiled, ...],
        limits: tuple[_Limits, ...],
        dt_s: float,
        values: tuple[float, ...],
        modes: tuple[bool, ...],
        *,
        latch: bool,
    ) -> None:
        """One step of ``rules``: Normal → Alert → Trip → Recovery as the module docstring says."""
        enabled = self.params.enabled
        for (name, st, quantity, above, when, has_alert), (threshold, delay, recovery, recovery_delay, after) in zip(
            rules, limits, strict=True
        ):
            if name not in enabled:
                st.alert, st.tripped, st.timer_s = False, False, 0.0
                continue
            value = values[quantity]
            if st.tripped:
                if latch:
                    continue
                st.timer_s += dt_s
                if after is not None:  # purely time-based recovery (AFE protections)
                    if st.timer_s >= after:
                        st.tripped, st.timer_s = False, 0.0
                    continue
                if recovery is not None and not (value <= recovery if above else value >= recovery):
                    st.timer_s = 0.0
                elif st.timer_s >= recovery_delay:
                    st.tripped, st.timer_s = False, 0.0
                continue
            if not (modes[when] and (value >= threshold if above else value <= threshold)):
                st.alert, st.timer_s = False, 0.0
                continue
            st.timer_s += dt_s
            st.alert = has_alert
            if st.timer_s >= delay:
                st.alert, st.tripped, st.timer_s = False, True, 0.0

    def check_instant(self, requested_ma: float) -> bool:
        """Hardware (AFE) protections on the current about to flow; True if one tripped now."""
        tripped = False
        for rule in _INSTANT_RULES:
            if rule.name not in self.params.enabled:
                continue
            st = self._safety[rule.name]
            if not st.tripped and self._beyond(requested_ma, self.params[rule.threshold], rule.trip_above):
                st.tripped, st.timer_s, tripped = True, 0.0, True
                self._fets = None
        return tripped

    # --- results --------------------------------------------------------------------------------

    @staticmethod
    def _bits(rules: tuple[Rule, ...], states: dict[str, _RuleState], attr: str) -> int:
        word = 0
        for rule in rules:
            if getattr(states[rule.name], attr):
                word |= 1 << rule.bit
        return word

    @property
    def safety_alert(self) -> int:
        return self._bits(RULES, self._safety, "alert")

    @staticmethod
    def _tripped_bits(masks: tuple[tuple[_RuleState, int], ...]) -> int:
        word = 0
        for st, mask in masks:
            if st.tripped:
                word |= mask
        return word

    @property
    def safety_status(self) -> int:
        return self._tripped_bits(self._safety_masks)

    @property
    def pf_alert(self) -> int:
        return self._bits(PF_RULES, self._pf, "alert")

    @property
    def pf_status(self) -> int:
        return self._tripped_bits(self._pf_masks)

    def tripped(self, name: str) -> bool:
        """Whether the named protection (safety or PF) is tripped."""
        state = self._safety.get(name) or self._pf.get(name)
        if state is None:
            raise KeyError(f"unknown protection {name!r}")
        return state.tripped

    def alerting(self, name: str) -> bool:
        state = self._safety.get(name) or self._pf.get(name)
        if state is None:
            raise KeyError(f"unknown protection {name!r}")
        return state.alert

    def names(self, register: str) -> set[str]:
        """Names of the rules active in a status register: ``SafetyAlert``, ``SafetyStatus``,
        ``PFAlert`` or ``PFStatus`` (the device encodes them with the chip profile's bit map).

        :raises KeyError: another register name.
        """
        rules, states, attr = {
            "SafetyAlert": (RULES, self._safety, "alert"),
            "SafetyStatus": (RULES, self._safety, "tripped"),
            "PFAlert": (PF_RULES, self._pf, "alert"),
            "PFStatus": (PF_RULES, self._pf, "tripped"),
        }[register]
        return {r.name for r in rules if getattr(states[r.name], attr)}

    def force(self, name: str, *, alert: bool | None = None, tripped: bool | None = None) -> None:
        """Test-bench hook: put one rule straight into alert or trip, as a real event would leave it
        (the FETs and alarms follow). The next :meth:`update` evaluates it normally again — a tripped
        first-level protection recovers by its own rule, a permanent failure stays latched.

        :raises KeyError: unknown protection.
        """
        state = self._safety.get(name) or self._pf.get(name)
        if state is None:
            raise KeyError(f"unknown protection {name!r}")
        if alert is not None:
            state.alert = alert
        if tripped is not None:
            state.tripped = tripped
        state.timer_s = 0.0
        self._fets = None

    @property
    def permanent_failure(self) -> bool:
        return self.pf_status != 0

    def _opened(self) -> Fet:
        opened = Fet.NONE
        for rule in RULES:
            if self._safety[rule.name].tripped:
                opened |= rule.opens
        if self.permanent_failure:
            opened |= Fet.BOTH
        return opened

    def _fet_state(self) -> tuple[bool, bool]:
        """(CHG open, DSG open), recomputed only after the rule states changed (asked several times a step)."""
        fets = self._fets
        if fets is None:
            opened = self._opened()
            fets = self._fets = (Fet.CHG in opened, Fet.DSG in opened)
        return fets

    @property
    def charge_disabled(self) -> bool:
        """OperationStatus[XCHG]: the CHG FET is held open."""
        return self._fet_state()[0]

    @property
    def discharge_disabled(self) -> bool:
        """OperationStatus[XDSG]: the DSG FET is held open."""
        return self._fet_state()[1]

    def alarms(self) -> set[str]:
        """BatteryStatus alarm names the protections raise now (TCA, TDA, OTA).

        Per the TI summary (SLUUBT5C §6.8, SLUUCN4A): TCA while a charge-side SafetyAlert or PFAlert[SOV]
        is pending or any PFStatus bit is set; TDA likewise for the discharge side; OTA while OTC/OTD
        is tripped.
        """
        result: set[str] = set()
        for rule in RULES:
            st = self._safety[rule.name]
            if st.alert and rule.alarm:
                result.add(rule.alarm)
            if st.tripped and rule.over_temperature:
                result.add("OTA")
        for rule in PF_RULES:
            if self._pf[rule.name].alert and rule.alarm:
                result.add(rule.alarm)
        if self.permanent_failure:
            result |= {"TCA", "TDA"}
        return result

    # --- permanent-failure control --------------------------------------------------------------

    def reset_permanent_failure(self) -> None:
        """Clear PFStatus and PFAlert (MAC PermanentFailDataReset; the device checks FULL ACCESS)."""
        for st in self._pf.values():
            st.alert, st.tripped, st.timer_s = False, False, 0.0
        self._fets = None

    def reset(self) -> None:
        """Gauge reset: first-level protection state is RAM and restarts; PF state is kept in data
        flash (SLUUCH2 §3.1 "PF data" survives reset) and stays latched."""
        for st in self._safety.values():
            st.alert, st.tripped, st.timer_s = False, False, 0.0
        self._fets = None
