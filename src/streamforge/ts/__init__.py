"""MPEG-TS: packets, PSI tables (PAT/PMT) and the splicer."""
