"""airspeed velocity (asv) benchmarks for fastmlp; configured by ``asv.conf.json`` at the root."""
