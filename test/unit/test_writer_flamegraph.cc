// Golden and structural tests of the flamegraph writer: to be written with it.
