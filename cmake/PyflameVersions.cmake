# SPDX-License-Identifier: Apache-2.0
# Discovery of Python header trees, and add_pyflame_version(), which turns
# one tree into one pyflameX.Y binary.

# Reads MAJOR.MINOR.MICRO from a header tree's patchlevel.h.
function(pyflame_read_patchlevel include_dir out_var)
  set(patchlevel "${include_dir}/patchlevel.h")
  if(NOT EXISTS "${patchlevel}")
    set(${out_var} "" PARENT_SCOPE)
    return()
  endif()
  file(STRINGS "${patchlevel}" lines REGEX "^#define[ \t]+PY_(MAJOR|MINOR|MICRO)_VERSION[ \t]+[0-9]+")
  foreach(part MAJOR MINOR MICRO)
    string(REGEX MATCH "PY_${part}_VERSION[ \t]+([0-9]+)" _ "${lines}")
    set(${part} "${CMAKE_MATCH_1}")
  endforeach()
  set(${out_var} "${MAJOR}.${MINOR}.${MICRO}" PARENT_SCOPE)
endfunction()

# Whether a header tree is of a free-threaded build: its pyconfig.h (in
# any of the tree's directories) defines Py_GIL_DISABLED.
function(pyflame_headers_free_threaded include_dirs out_var)
  set(${out_var} FALSE PARENT_SCOPE)
  foreach(dir IN LISTS include_dirs)
    if(EXISTS "${dir}/pyconfig.h")
      file(STRINGS "${dir}/pyconfig.h" defines REGEX "^#define[ \t]+Py_GIL_DISABLED[ \t]+1")
      if(defines)
        set(${out_var} TRUE PARENT_SCOPE)
      endif()
      return()
    endif()
  endforeach()
endfunction()

# The build a header directory's name claims: python3.11 -> 3.11,
# python3.13t -> 3.13t (t: free-threaded); empty if it names none.
function(pyflame_claim_of_dir dir out_var)
  set(${out_var} "" PARENT_SCOPE)
  if(dir MATCHES "python([0-9]+\\.[0-9]+)([a-z]*)$")
    set(claim "${CMAKE_MATCH_1}")
    if(CMAKE_MATCH_2 MATCHES "t")
      string(APPEND claim "t")
    endif()
    set(${out_var} "${claim}" PARENT_SCOPE)
  endif()
endfunction()

# Records a candidate tree for `claimed_minor` (e.g. 3.11, or 3.13t for a
# free-threaded build) unless that build already has one. Fails
# configuration when the headers disagree with the claim: building a
# pyflame3.6 from 3.5 headers, or a pyflame3.13 from free-threaded ones,
# must be impossible.
function(pyflame_consider claimed_minor include_dirs origin)
  list(GET include_dirs 0 main_dir)
  pyflame_read_patchlevel("${main_dir}" found)
  if(found STREQUAL "")
    message(STATUS "pyflame: ignoring ${main_dir} (${origin}): no patchlevel.h")
    return()
  endif()
  string(REGEX MATCH "^[0-9]+\\.[0-9]+" found_minor "${found}")
  pyflame_headers_free_threaded("${include_dirs}" free_threaded)
  if(free_threaded)
    string(APPEND found_minor "t")
  endif()
  if(NOT found_minor STREQUAL claimed_minor)
    message(FATAL_ERROR
      "pyflame: ${main_dir} (${origin}) is claimed to be Python ${claimed_minor}, "
      "but its headers are of ${found_minor} (patchlevel.h: ${found}; t: pyconfig.h "
      "defines Py_GIL_DISABLED). Fix the path or the claim.")
  endif()
  if(DEFINED PYFLAME_HEADERS_${claimed_minor})
    return()
  endif()
  # 3.14t+ run each thread on its own copy of a function's bytecode
  # (tlbc_index): the walker does not read those copies yet, so a
  # pyflame3.14t would name the wrong line for all threads but one.
  if(free_threaded AND found VERSION_GREATER_EQUAL 3.14)
    message(STATUS "pyflame: not building pyflame${claimed_minor} from ${main_dir} (${origin}): "
                   "free-threaded ${found} keeps per-thread bytecode, which pyflame does not read yet")
    return()
  endif()
  set(PYFLAME_HEADERS_${claimed_minor} "${include_dirs}" PARENT_SCOPE)
  set(PYFLAME_HEADERS_VERSION_${claimed_minor} "${found}" PARENT_SCOPE)
  set(PYFLAME_HEADERS_ORIGIN_${claimed_minor} "${origin}" PARENT_SCOPE)
  set(minors ${PYFLAME_FOUND_MINORS} ${claimed_minor})
  set(PYFLAME_FOUND_MINORS "${minors}" PARENT_SCOPE)
endfunction()

# Fills PYFLAME_FOUND_MINORS and PYFLAME_HEADERS_<minor>, in priority order:
# -DPYFLAME_PYTHONS, pyenv installs, the provisioned test interpreters,
# Debian-style /usr/include/pythonX.Y.
macro(pyflame_discover_pythons)
  set(PYFLAME_FOUND_MINORS "")
  foreach(entry IN LISTS PYFLAME_PYTHONS)
    if(NOT entry MATCHES "^([0-9]+\\.[0-9]+t?)=(.+)$")
      message(FATAL_ERROR "pyflame: PYFLAME_PYTHONS entry '${entry}' is not MINOR=INCLUDE_DIR[:DIR...]")
    endif()
    set(minor "${CMAKE_MATCH_1}")
    string(REPLACE ":" ";" dirs "${CMAKE_MATCH_2}")
    pyflame_consider("${minor}" "${dirs}" "PYFLAME_PYTHONS")
  endforeach()

  set(pyenv_root "$ENV{PYENV_ROOT}")
  if(pyenv_root STREQUAL "")
    set(pyenv_root "/root/.pyenv")
  endif()
  file(GLOB pyenv_dirs LIST_DIRECTORIES true "${pyenv_root}/versions/*/include/python[23].*")
  list(SORT pyenv_dirs COMPARE NATURAL ORDER DESCENDING)  # newest patch first
  foreach(dir IN LISTS pyenv_dirs)
    pyflame_claim_of_dir("${dir}" claim)
    if(claim)
      pyflame_consider("${claim}" "${dir}" "pyenv")
    endif()
  endforeach()

  set(manifest "${PYFLAME_TEST_INTERPRETERS}/manifest.tsv")
  if(EXISTS "${manifest}")
    file(STRINGS "${manifest}" rows)
    foreach(row IN LISTS rows)
      string(REPLACE "\t" ";" cols "${row}")
      list(LENGTH cols n)
      if(n LESS 7)
        continue()
      endif()
      list(GET cols 0 name)
      list(GET cols 1 minor)
      list(GET cols 6 headers)
      if(name STREQUAL "name" OR headers STREQUAL "-" OR headers STREQUAL "")
        continue()
      endif()
      string(REPLACE ":" ";" dirs "${headers}")
      pyflame_consider("${minor}" "${dirs}" "test interpreter ${name}")
    endforeach()
  endif()

  file(GLOB system_dirs LIST_DIRECTORIES true "/usr/include/python[23].*")
  foreach(dir IN LISTS system_dirs)
    pyflame_claim_of_dir("${dir}" claim)
    if(claim)
      pyflame_consider("${claim}" "${dir}" "system")
    endif()
  endforeach()
  list(SORT PYFLAME_FOUND_MINORS COMPARE NATURAL)
endmacro()

# pyflameX.Y: the shared core and walker, plus this version's layout table,
# the only unit compiled against Python headers.
function(add_pyflame_version minor)
  set(include_dirs ${PYFLAME_HEADERS_${minor}})
  list(GET include_dirs 0 main_dir)
  string(REPLACE "." "_" id "${minor}")
  add_library(pyflame_layout_${id} STATIC ${PROJECT_SOURCE_DIR}/versions/layout.c)
  target_include_directories(pyflame_layout_${id} PRIVATE ${include_dirs} ${PROJECT_SOURCE_DIR}/versions/walker)
  # Python's headers are not ours to warn about.
  target_compile_options(pyflame_layout_${id} PRIVATE -w)

  add_executable(pyflame${minor}
    ${PROJECT_SOURCE_DIR}/frontends/main.cc
    ${PROJECT_SOURCE_DIR}/versions/this_version.cc)
  target_link_libraries(pyflame${minor} PRIVATE pyflame_layout_${id} pyflame_walker pyflame_core)
  set(PYFLAME_BINARIES ${PYFLAME_BINARIES} pyflame${minor} PARENT_SCOPE)
  message(STATUS "pyflame: pyflame${minor} from Python ${PYFLAME_HEADERS_VERSION_${minor}} headers "
                 "(${PYFLAME_HEADERS_ORIGIN_${minor}}): ${main_dir}")
endfunction()
