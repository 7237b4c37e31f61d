// Golden and structural tests of the pprof writer: to be written with it.
