"""A fault-injecting mock Xtream Codes panel serving real H.264/AAC MPEG-TS."""
