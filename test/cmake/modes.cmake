# SPDX-License-Identifier: Apache-2.0
# --mode wall|cpu|gil in record and dump against every provisioned
# interpreter, in both modes (test/integration/test_modes.py): a fixture
# of six threads whose states are known; about 8 s each.
pyflame_add_interpreter_tests(modes test_modes.py 120)
