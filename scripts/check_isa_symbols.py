#!/usr/bin/env python3
"""Fail if the per-ISA kernel objects could lend code to each other or to the rest of the extension.

Each ISA's kernels are compiled from the same sources with different -m flags. A linkable symbol
(strong or weak, code or data) that an ISA's objects define outside ``relucore::<isa>::`` -- an
inline helper in a shared header, a std:: template instance -- has the same name in every ISA's
objects, and the linker keeps one copy for all of them: the scalar path could then run an AVX-512
copy and crash an older CPU. So, for every ISA, every symbol its objects export must lie in
``relucore::<isa>::``, and no symbol may be defined by two ISAs, or by an ISA and the baseline
objects (``--base``). CMakeLists.txt runs this after every link of ``_core``.

Usage: check_isa_symbols.py [--nm NM] --isa NAME OBJ... [--isa NAME OBJ...] [--base OBJ...]
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict

# Symbols that cannot be moved into a namespace, with the reason each is harmless.
ALLOWED = {
    # Emitted by the compiler for exception-handling tables: a hidden weak pointer to the C++
    # runtime's personality routine, the same data in every object, no ISA code behind it.
    "DW.ref.__gxx_personality_v0",
}

# nm's lowercase types are local symbols (invisible to the linker), except these GNU extensions:
# u = unique global, i = indirect function, v/w = weak (defined, since nm runs with --defined-only).
LINKABLE_LOWERCASE = set("uivw")


def defined(nm: str, obj: str) -> str:
    return subprocess.run([nm, "--defined-only", obj], check=True, capture_output=True, text=True).stdout


def static_initializers(nm: str, obj: str) -> list[str]:
    """The dynamic initializers ``obj`` would run at load (``_GLOBAL__sub_I_*``, local symbols): in an
    ISA's object they would execute that ISA's instructions on import, whatever the CPU."""
    names = [line.split()[-1] for line in defined(nm, obj).splitlines() if "_GLOBAL__sub_I_" in line]
    # _GLOBAL__sub_I_00099_... carry a priority: the sanitizers' own registration, not our code
    return [n for n in names if not n.startswith("_GLOBAL__sub_I_000")]


def linkable_symbols(nm: str, obj: str) -> list[str]:
    """The mangled names of the symbols ``obj`` defines that the linker may resolve against."""
    out = defined(nm, obj)
    names = []
    for line in out.splitlines():
        parts = line.split(maxsplit=2)
        if len(parts) != 3:
            continue
        _, kind, name = parts
        if kind.isupper() or kind in LINKABLE_LOWERCASE:
            names.append(name)
    return names


def in_namespace(mangled: str, isa: str) -> bool:
    """Whether an Itanium-mangled name denotes an entity of ``relucore::<isa>::``.

    Read from the mangled form rather than the demangled one, whose return types and template
    arguments may themselves name namespaces: the entity's own scope is the first nested name.
    """
    if mangled.startswith("__Z"):
        mangled = mangled[1:]  # Mach-O prefixes every C-level name with one more underscore
    if not mangled.startswith("_Z"):
        return False
    s = mangled[2:]
    while True:
        if s[:2] in ("TV", "TT", "TI", "TS", "GV", "GR", "TH", "TW"):
            s = s[2:]  # vtable, VTT, typeinfo, its name, guard, reference temporary, TLS helpers: of the entity that follows
        elif s[:2] in ("Th", "Tv"):
            s = s.split("_", 1 if s[1] == "h" else 2)[-1]  # thunks: skip the call offset(s)
        elif s[:1] == "Z":
            s = s[1:]  # a local entity: belongs to the function whose encoding follows
        else:
            break
    m = re.match(r"N[rVK]*[RO]?", s)
    if not m:
        return False  # unscoped: the global namespace or std::
    prefix = f"8relucore{len(isa)}{isa}"
    return s[m.end():].startswith(prefix)


def demangle(names: list[str], nm: str) -> dict[str, str]:
    filt = shutil.which("c++filt", path=os.path.dirname(nm) or None) or shutil.which("c++filt")
    if not filt or not names:
        return {n: n for n in names}
    out = subprocess.run([filt], input="\n".join(names), check=True, capture_output=True, text=True).stdout
    return dict(zip(names, out.splitlines()))


def parse_args(argv: list[str]) -> tuple[str, dict[str, list[str]]]:
    """'--nm NM', then groups: '--isa NAME OBJ...' and '--base OBJ...' (an option may repeat)."""
    nm, group = "nm", None
    groups: dict[str, list[str]] = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--nm", "--isa"):
            if i + 1 == len(argv):
                sys.exit(f"check_isa_symbols: {a} needs a value")
            i += 1
            if a == "--nm":
                nm = argv[i] or nm
            else:
                group = argv[i]
                groups.setdefault(group, [])
        elif a == "--base":
            group = "--base"
            groups.setdefault(group, [])
        elif group is None:
            sys.exit(f"check_isa_symbols: object {a!r} before any --isa/--base\n{__doc__}")
        elif a:
            groups[group].append(a)
        i += 1
    if not any(g != "--base" for g in groups):
        sys.exit(f"check_isa_symbols: no --isa group\n{__doc__}")
    return nm, groups


def main(argv: list[str]) -> int:
    nm, groups = parse_args(argv)
    isa_objects = {o for g, objs in groups.items() if g != "--base" for o in objs}
    definers: dict[str, set[str]] = defaultdict(set)  # symbol -> groups defining it
    outside: list[tuple[str, str, str]] = []  # (isa, object, symbol)
    at_load: list[tuple[str, str, str]] = []  # (isa, object, initializer)
    for group, objs in groups.items():
        for obj in objs:
            if group == "--base" and obj in isa_objects:
                continue
            if group != "--base":
                at_load += [(group, obj, name) for name in static_initializers(nm, obj)]
            for name in linkable_symbols(nm, obj):
                if name in ALLOWED:
                    continue
                definers[name].add("baseline" if group == "--base" else group)
                if group != "--base" and not in_namespace(name, group):
                    outside.append((group, obj, name))
    shared = {n: g for n, g in definers.items() if len(g) > 1}
    for isa, obj, name in at_load:
        print(f"error: {os.path.basename(obj)} ({isa}) runs {name} at load: a namespace-scope object with a "
              "dynamic initializer would execute this ISA's code on import; build it on first use instead",
              file=sys.stderr)
    if at_load:
        return 1
    if not outside and not shared:
        n = sum(len(o) for g, o in groups.items() if g != "--base")
        print(f"check_isa_symbols: {n} ISA objects ({', '.join(g for g in groups if g != '--base')}): "
              "every exported symbol in its own relucore::<isa> namespace")
        return 0
    human = demangle(sorted({n for _, _, n in outside} | set(shared)), nm)
    for isa, obj, name in outside:
        print(f"error: {os.path.basename(obj)} ({isa}) defines {human[name]!r} [{name}] "
              f"outside relucore::{isa}::", file=sys.stderr)
    for name, g in sorted(shared.items()):
        print(f"error: {human[name]!r} [{name}] is defined in more than one of: {', '.join(sorted(g))}",
              file=sys.stderr)
    print("check_isa_symbols: the linker could pick one ISA's copy of these for another ISA (or for the "
          "baseline code); move them into namespace relucore::RC_NS (see scripts/check_isa_symbols.py)",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
