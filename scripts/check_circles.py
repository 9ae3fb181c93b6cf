#!/usr/bin/env python3
"""No import circles between the files of a crate (issue 14): every `crate::` path outside
comments and test modules is an edge from its file to the module it names; a strongly
connected group of two or more files is a circle. Exit 1 naming each circle."""
import os, re, sys, glob

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
found = []
for crate in sorted(glob.glob('crates/*/src')):
    files = {}
    for root, _, fs in os.walk(crate):
        for f in fs:
            if f.endswith('.rs'):
                p = os.path.join(root, f)
                rel = os.path.relpath(p, crate)[:-3].split('/')
                if rel[-1] in ('mod', 'lib', 'main'): rel = rel[:-1]
                files['::'.join(rel)] = p
    # aliases from pub use in lib.rs: pub use assess::{a, b}
    alias = {}
    libp = files.get('')
    if libp:
        for m in re.finditer(r'pub use (\w+)::\{([^}]*)\}', open(libp).read()):
            for name in m.group(2).replace('\n',' ').split(','):
                name = name.strip()
                if name and f"{m.group(1)}::{name}" in files: alias[name] = f"{m.group(1)}::{name}"
    def resolve(path):
        parts = path.split('::')
        if parts and parts[0] in alias: parts = alias[parts[0]].split('::') + parts[1:]
        for i in range(len(parts), 0, -1):
            k = '::'.join(parts[:i])
            if k in files: return k
        return None
    g = {m: set() for m in files}
    for m, p in files.items():
        src = open(p).read()
        src = src.split('#[cfg(test)]')[0]
        src = '\n'.join(l for l in src.split('\n') if not l.strip().startswith('//'))
        for ref in re.findall(r'crate::((?:\w+::)*\w+)', src):
            t = resolve(ref)
            if t is not None and t != m and t != '': g[m].add(t)
        for ref in re.findall(r'use crate::\{([^}]*)\}', src):
            for r in ref.split(','):
                t = resolve(r.strip().split('::')[0]) if r.strip() else None
                if t and t != m and t != '': g[m].add(t)
    # tarjan
    idx, low, st, on, out, c = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)
    def sc(v):
        idx[v] = low[v] = c[0]; c[0] += 1; st.append(v); on.add(v)
        for w in g[v]:
            if w not in idx: sc(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], idx[w])
        if low[v] == idx[v]:
            comp = []
            while True:
                w = st.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: out.append(comp)
    for v in g:
        if v not in idx: sc(v)
    for comp in out:
        print(f'{crate}: import circle between {sorted(comp)}')
        found.append(comp)
sys.exit(1 if found else 0)
