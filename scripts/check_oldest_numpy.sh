#!/usr/bin/env bash
# Is the declared NumPy range true? Build relucore the normal way (build isolation: against the
# numpy>=2 headers of [build-system] requires, NPY_TARGET_VERSION at the oldest supported API), then
# install that wheel into a separate venv beside the LOWEST NumPy that pyproject.toml's [project]
# dependencies allow (its newest patch release: numpy>=1.23 -> 1.23.5), and run the ufunc and
# functional tests there. Run by .ci/run; VENV=dir reuses a venv; extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
python=${PYTHON:-python3}

# "numpy>=1.23" in [project] dependencies -> "1.23"
floor=$("$python" - <<'EOF'
import re, sys
try:
    import tomllib
    deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
except ImportError:  # Python < 3.11: the dependencies line is simple enough to read
    deps = re.findall(r'"([^"]+)"', re.search(r"^dependencies\s*=\s*\[(.*?)\]", open("pyproject.toml").read(),
                                                 re.M | re.S).group(1))
for d in deps:
    m = re.fullmatch(r"\s*numpy\s*>=\s*(\d+)\.(\d+)(?:\.\d+)?\s*(,.*)?", d)
    if m:
        print(f"{m.group(1)}.{m.group(2)}")
        break
else:
    sys.exit("pyproject.toml: no 'numpy>=X.Y' in [project] dependencies")
EOF
)
echo "lowest declared NumPy: $floor.x"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
venv=${VENV:-$work/venv}
"$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip

# 1. the wheel, built as any user's pip builds it (isolated, numpy>=2 headers)
"$venv/bin/pip" wheel -q --no-deps -w "$work/wheel" . --config-settings=build-dir=build/oldest-numpy
wheel=$(ls "$work"/wheel/relucore-*.whl)

# 2. beside the oldest NumPy. Test tools: versions that still support that NumPy (hypothesis's
#    numpy strategies and pytest-benchmark need nothing newer; pytest 8 is the line 1.23 knew).
"$venv/bin/pip" install -q "$wheel" "numpy==$floor.*" "pytest>=7,<9" "pytest-benchmark>=4,<6" "hypothesis>=6,<7"
"$venv/bin/python" - "$floor" <<'EOF'
import sys
import numpy, relucore
from relucore import ufuncs
assert numpy.__version__.startswith(sys.argv[1] + "."), numpy.__version__
print(f"relucore {relucore.__version__} (isa {relucore.runtime_info()['isa']}) on numpy {numpy.__version__}, "
      f"python {sys.version.split()[0]}")
EOF

# 3. the ufunc and functional tests, importing the installed package (not the source tree)
cd "$work"
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$repo/tests/test_ufuncs.py" "$repo/tests/test_activations.py" "$@"
echo "oldest NumPy ($floor.x): ufunc and functional tests pass"
