#!/usr/bin/env bash
# Build relucore with -fsanitize=address,undefined (CMake option RELUCORE_SANITIZE) in a fresh venv
# and run the test suite under it. CPython itself is not instrumented, so ASan's runtime is preloaded;
# leak checking is off because the interpreter's own allocations would drown the report; a huge
# allocation returns NULL (NumPy: MemoryError) as plain malloc does, so the hostile tests behave alike.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-$(mktemp -d)/venv}
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
RELUCORE_SANITIZE=ON "$venv/bin/pip" install -q '.[test]' --config-settings=build-dir=build/sanitize
asan=$(${CXX:-g++} -print-file-name=libasan.so)
ubsan=$(${CXX:-g++} -print-file-name=libubsan.so)
export LD_PRELOAD="$asan $ubsan"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd "$(mktemp -d)"  # import the installed package, not the source tree
"$venv/bin/python" -m pytest "$OLDPWD/tests" -q -p no:cacheprovider "$@"
echo "sanitizer run: clean"
