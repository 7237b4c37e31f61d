/* SPDX-License-Identifier: Apache-2.0 */
/* A small ELF for test_elf.cc: built as a shared library, a PIE and a
 * non-PIE executable, each also stripped of .symtab. */
#include <stdio.h>

int pyflame_test_marker = 42;        /* exported: in .dynsym with -rdynamic */
static int pyflame_test_hidden = 7;  /* static: only in .symtab */

int pyflame_test_use(void) { return pyflame_test_hidden++; }

#ifdef PYFLAME_FIXTURE_MAIN
int main(void) {
  /* Tell the test where the marker landed, then wait to be read. */
  printf("%p\n", (void*)&pyflame_test_marker);
  fflush(stdout);
  (void)getchar();
  return pyflame_test_use() == 7 ? 0 : 1;
}
#endif
