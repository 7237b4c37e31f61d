# record against every provisioned interpreter: accuracy, hot lines, launch,
# Ctrl-C, SIGTERM, target exit, --idle/--gil (test/integration/test_record.py).
pyflame_add_interpreter_tests(record test_record.py 180)
