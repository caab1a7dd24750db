"""Sub-models of the app model (no widgets): connection, live data, alarms, flags, bus monitor,
recording, registers, gauge and emulator."""
