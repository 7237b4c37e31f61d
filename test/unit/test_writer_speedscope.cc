// Golden and structural tests of the speedscope writer: to be written with it.
