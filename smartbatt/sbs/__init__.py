"""The SBS 1.1 layer: command table, codecs, offline decode, the Battery object and bus scan."""
