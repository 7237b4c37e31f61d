# SPDX-License-Identifier: Apache-2.0
# The `pyflame` wrapper and the packages (issue 4). Included from
# test/CMakeLists.txt: bin_dir, manifest, integration, Python3_EXECUTABLE.

# Detection by PID and by command, one case per provisioned interpreter.
foreach(name IN LISTS interpreters)
  add_test(NAME wrapper/detect/${name}
           COMMAND ${Python3_EXECUTABLE} ${integration}/test_wrapper.py
                   --bin-dir ${bin_dir} --manifest ${manifest} --detect ${name})
  set_tests_properties(wrapper/detect/${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
endforeach()
foreach(group args errors)
  add_test(NAME wrapper/${group}
           COMMAND ${Python3_EXECUTABLE} ${integration}/test_wrapper.py
                   --bin-dir ${bin_dir} --manifest ${manifest} --${group})
  # The errors case must not see /usr/bin/pyflameX.Y that packages/install puts there.
  set_tests_properties(wrapper/${group} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120
                       RESOURCE_LOCK pyflame_usr_install)
endforeach()

# The wrapper and the packaging scripts are POSIX sh / bash without warnings.
add_test(NAME wrapper/shellcheck
         COMMAND sh -c "command -v shellcheck >/dev/null || { echo 'SKIP: shellcheck is not installed (test/tools/packaging.sh installs it)'; exit 77; }
                        shellcheck -s sh \"$0\" && shellcheck \"$1\" \"$2\" && shellcheck -s bash \"$3\""
                 ${PROJECT_SOURCE_DIR}/frontends/pyflame
                 ${PROJECT_SOURCE_DIR}/scripts/package.sh
                 ${PROJECT_SOURCE_DIR}/test/tools/packaging.sh
                 ${PROJECT_SOURCE_DIR}/packaging/pyflame.bash-completion)
set_tests_properties(wrapper/shellcheck PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 60)

# Build the Debian packages from this build, lintian them, install them with
# dpkg into the real /usr, profile through /usr/bin/pyflame, purge them.
add_test(NAME packages/install
         COMMAND ${Python3_EXECUTABLE} ${integration}/test_packages.py
                 --build-dir ${PROJECT_BINARY_DIR} --source-dir ${PROJECT_SOURCE_DIR}
                 --manifest ${manifest})
set_tests_properties(packages/install PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600
                     RESOURCE_LOCK pyflame_usr_install)

# A clean Debian root (mmdebstrap minbase + python3) installs `pyflame`
# alone from a local repository and profiles its python3 at once.
add_test(NAME packages/clean-root
         COMMAND ${Python3_EXECUTABLE} ${integration}/test_clean_root.py
                 --build-dir ${PROJECT_BINARY_DIR} --source-dir ${PROJECT_SOURCE_DIR})
set_tests_properties(packages/clean-root PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900)
