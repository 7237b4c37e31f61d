# SPDX-License-Identifier: Apache-2.0
"""The fault-injection cases of test_faults.py, one module per concern."""
