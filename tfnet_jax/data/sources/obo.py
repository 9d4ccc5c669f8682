"""Reading a Gene Ontology OBO 1.2 file (e.g. `go-basic.obo`, plain or gzipped) into the
ancestor closure that annotations are propagated along.

Policy (the one place it is defined):
- Only `[Term]` stanzas count; `[Typedef]`, `[Instance]` and header tags other than
  `default-namespace` are ignored.
- Terms inherit from their `is_a` parents and their `relationship: part_of` parents; other
  relationships (regulates, positively_regulates, has_part, ...) do not propagate.
- `is_obsolete: true` terms are kept aside: annotations to them are dropped (by the caller),
  and a parent link to one (or to an ID the file does not define) is dropped and reported.
- `alt_id`s name their primary term. An ID defined twice, or an alt_id that is also another
  term's ID or alt_id, is a DataError naming the line.
- An is_a / part_of cycle is a DataError naming the file, the line of one link on it and
  the terms on the cycle.
The parser is hand-written rather than taken from obonet / pronto: neither reports the line
of a bad stanza or of a cycle, and the subset of OBO used here is a few tag lines.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from tfnet_jax.data.io.text import numbered_lines
from tfnet_jax.errors import DataError

ASPECT_OF_NAMESPACE = {"biological_process": "BP", "molecular_function": "MF",
                       "cellular_component": "CC"}
PROPAGATING_RELATIONSHIPS = ("part_of",)  # besides is_a
OBSOLETE = -1
UNKNOWN = -2


@dataclass
class _Stanza:
    line: int
    id: str | None = None
    namespace: str | None = None
    obsolete: bool = False
    alt_ids: list[tuple[str, int]] = field(default_factory=list)
    parents: list[tuple[str, int]] = field(default_factory=list)  # (parent ID, line of the link)


def _parse(path: Path) -> list[_Stanza]:
    stanzas: list[_Stanza] = []
    current: _Stanza | None = None
    in_header, default_namespace = True, None
    for number, raw in numbered_lines(path):
        line = raw.strip()
        if not line or line.startswith("!"):
            continue
        if line.startswith("["):
            in_header = False
            current = _Stanza(number) if line == "[Term]" else None
            if current is not None:
                stanzas.append(current)
            continue
        tag, colon, value = line.partition(":")
        words = value.split()  # the value's words; a trailing "! name" comment comes after them
        if in_header and tag == "default-namespace" and words:
            default_namespace = words[0]
        if current is None:
            continue
        if not colon or not words:
            raise DataError(f"{path}, line {number}: expected 'tag: value' in a [Term] stanza, "
                            f"got {line[:80]!r}")
        if tag == "id":
            current.id = words[0]
        elif tag == "namespace":
            current.namespace = words[0]
        elif tag == "is_obsolete":
            current.obsolete = words[0] == "true"
        elif tag == "alt_id":
            current.alt_ids.append((words[0], number))
        elif tag == "is_a":
            current.parents.append((words[0], number))
        elif tag == "relationship" and words[0] in PROPAGATING_RELATIONSHIPS:
            if len(words) < 2:
                raise DataError(f"{path}, line {number}: relationship {words[0]} without a term")
            current.parents.append((words[1], number))
    for stanza in stanzas:
        if stanza.id is None:
            raise DataError(f"{path}, line {stanza.line}: [Term] stanza without an id")
        if stanza.namespace is None:
            stanza.namespace = default_namespace
    return stanzas


@dataclass(frozen=True)
class Ontology:
    """The live (non-obsolete) terms of an OBO file with their ancestor closure."""

    source: str
    terms: np.ndarray  # str [n]: primary IDs of live terms, sorted
    aspects: np.ndarray  # object [n]: "BP" / "MF" / "CC", or None for another namespace
    closure: sp.csr_matrix  # bool [n, n]: closure[t, a] when a is t or an ancestor of t
    alt_ids: dict[str, str]  # alt_id -> primary ID (of a live or an obsolete term)
    obsolete: frozenset  # primary IDs of obsolete terms
    report: dict

    @cached_property
    def index(self) -> dict[str, int]:
        return {term: i for i, term in enumerate(self.terms.tolist())}

    def resolve(self, terms: np.ndarray) -> np.ndarray:
        """Column index of each term ID (an alt_id counts as its primary term); OBSOLETE for
        obsolete terms, UNKNOWN for IDs the file does not define."""
        index = self.index
        out = np.empty(len(terms), dtype=np.int64)
        for i, term in enumerate(terms.tolist()):
            term = self.alt_ids.get(term, term)
            out[i] = index.get(term, OBSOLETE if term in self.obsolete else UNKNOWN)
        return out


def read_obo(path: str | Path) -> Ontology:
    """Parse an OBO 1.2 ontology and close its is_a / part_of links (see the module policy)."""
    path = Path(path)
    stanzas = _parse(path)
    first: dict[str, _Stanza] = {}
    for stanza in stanzas:
        if stanza.id in first:
            raise DataError(f"{path}, line {stanza.line}: term {stanza.id} is defined twice "
                            f"(first on line {first[stanza.id].line})")
        first[stanza.id] = stanza
    alt_ids: dict[str, str] = {}
    for stanza in stanzas:
        for alt, line in stanza.alt_ids:
            if alt in first or alt in alt_ids:
                other = alt_ids.get(alt, alt)
                raise DataError(f"{path}, line {line}: alt_id {alt} of {stanza.id} already names "
                                f"term {other}")
            alt_ids[alt] = stanza.id
    live = sorted(s.id for s in stanzas if not s.obsolete)
    index = {term: i for i, term in enumerate(live)}
    children, parents, link_lines, dropped = [], [], {}, []
    for stanza in stanzas:
        if stanza.obsolete:
            continue
        for parent, line in stanza.parents:
            target = index.get(alt_ids.get(parent, parent))
            if target is None:
                dropped.append(f"{stanza.id} -> {parent} (line {line})")
                continue
            child = index[stanza.id]
            children.append(child)
            parents.append(target)
            link_lines.setdefault((child, target), line)
    n = len(live)
    links = sp.csr_matrix((np.ones(len(children), dtype=bool), (children, parents)), shape=(n, n))
    ancestors = _strict_closure(links)
    on_cycle = np.flatnonzero(ancestors.diagonal())
    if len(on_cycle):
        cycle = _shortest_cycle(links, int(on_cycle[0]))
        names = " -> ".join(live[t] for t in cycle)
        raise DataError(f"{path}, line {link_lines[(cycle[0], cycle[1])]}: is_a/part_of cycle "
                        f"among GO terms {names}")
    closure = (ancestors + sp.identity(n, dtype=bool, format="csr")).tocsr()
    namespaces = {s.id: s.namespace for s in stanzas}
    aspects = np.array([ASPECT_OF_NAMESPACE.get(namespaces[t]) for t in live], dtype=object)
    report = {
        "file": str(path), "terms": n, "obsolete_terms": len(stanzas) - n,
        "alt_ids": len(alt_ids), "links": int(links.nnz),
        "terms_by_aspect": {a: int((aspects == a).sum()) for a in ASPECT_OF_NAMESPACE.values()},
        "dropped_links_to_obsolete_or_unknown_terms": {"count": len(dropped), "examples": dropped[:5]},
    }
    return Ontology(source=str(path), terms=np.array(live, dtype=str), aspects=aspects,
                    closure=closure, alt_ids=alt_ids,
                    obsolete=frozenset(s.id for s in stanzas if s.obsolete), report=report)


def _strict_closure(links: sp.csr_matrix) -> sp.csr_matrix:
    """Reachability by one or more links (bool), by squaring until nothing new appears: about
    log2(depth of the ontology) sparse products."""
    reach = links.astype(np.int32)
    while True:
        grown = reach + reach @ reach
        grown.data[:] = 1
        if grown.nnz == reach.nnz:
            return reach.astype(bool)
        reach = grown


def _shortest_cycle(links: sp.csr_matrix, start: int) -> list[int]:
    """The terms of a shortest link path from `start` back to itself, start at both ends."""
    came_from = {start: -1}
    queue = deque([start])
    while queue:
        term = queue.popleft()
        for parent in links.indices[links.indptr[term]:links.indptr[term + 1]].tolist():
            if parent == start:
                path = [term]
                while came_from[path[-1]] != -1:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if parent not in came_from:
                came_from[parent] = term
                queue.append(parent)
    raise AssertionError("a term on a cycle reaches itself")  # the closure's diagonal said so
