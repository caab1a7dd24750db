; Golden data-flash image of the 3S laptop example (examples/eol_laptop_3s.toml), TI SMBus FlashStream.
; Exported with smartbatt (DataFlash.export_flashstream, profile bq40z50) from an emulated pack programmed
; with the calibration and protection-enable values of a public bqStudio export of a bq40z50-R1
; (Hao-Chunlin/Gas-Gauge-Based-on-BQ40Z50, 3.Reference/bq4050_user_config.gg.csv): Cell Gain 12173,
; Pack Gain 49615, BAT Gain 49222, External1 Temp Offset 0.1 C, Enabled Protections A ff. Whole 32-byte
; blocks, each followed by a read-back compare (SCL); X: 100 waits 100 ms after each block write
; (PX4 batt_smbus waits 100 ms after a data-flash write). A production line replaces this file with the
; bqStudio export of its own golden pack.
SWB: 16 44 00 40 8D 2F CF C1 46 C0 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 00 00 00
X: 100
SWB: 16 44 00 40
SCL: 16 44 22 00 40 8D 2F CF C1 46 C0 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 00 00 00
SWB: 16 44 38 49 FF 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
X: 100
SWB: 16 44 38 49
SCL: 16 44 22 38 49 FF 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
