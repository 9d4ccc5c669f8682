"""STRING (v11/v12): `protein.links[.detailed]` edge scores, `protein.info` names and
`protein.aliases`, into one layer `string_<channel>` per score channel.

Protein -> gene, in this order (the first that names exactly one gene_info gene wins):
1. the aliases file: its Entrez-sourced aliases (source containing "Entrez", e.g.
   `Ensembl_EntrezGene`) that are gene_info GeneIDs;
2. the aliases file: aliases that are exactly one gene_info gene's current Symbol;
3. the info file's preferred_name: gene_info Symbol, then an unambiguous Synonym.
An edge is kept when its channel score >= `min_score`; weight = score / 1000; STRING lists
each pair in both directions, kept once (several proteins of one gene: the highest score).

The links file (13.7 M lines for human) is parsed by pyarrow's multi-threaded CSV reader
with the protein columns dictionary-encoded: 4-byte codes per row, never 13.7 M strings.
"""
from __future__ import annotations

import logging
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from tfnet_jax.data.genes import GeneTable
from tfnet_jax.data.io.text import open_text
from tfnet_jax.data.sources.edges import Layer, canonical, source_entry
from tfnet_jax.errors import ConfigError, DataError

log = logging.getLogger(__name__)

CHANNELS = ("combined", "neighborhood", "fusion", "cooccurence", "coexpression",
            "experimental", "database", "textmining")
PROTEIN_COLUMNS = ("protein1", "protein2")


def _header(path: Path, what: str) -> list[str]:
    try:
        with open_text(path) as handle:
            line = handle.readline()
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise DataError(f"{path}: cannot read the {what} ({err})") from err
    return line.lstrip("#").split()


def _read_columns(path: Path, names: list[str], what: str) -> pd.DataFrame:
    """The first len(names) tab-separated columns after the header line, as strings; plain or
    gzipped told by content, as `_header` reads it (not by name), read errors one line."""
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        return pd.read_csv(path, sep="\t", usecols=list(range(len(names))), names=names, skiprows=1,
                           dtype=str, na_filter=False, quoting=3, compression="gzip" if gzipped else None)
    except (OSError, UnicodeDecodeError, EOFError, zlib.error, pd.errors.ParserError) as err:
        raise DataError(f"{path}: cannot read the {what} ({str(err).splitlines()[0]})") from err


def channel_column(channel: str, header: list[str], path: Path) -> str:
    """The links column of a channel: `combined` -> combined_score; v11's `experiments` too."""
    for name in (channel, f"{channel}_score", "experiments" if channel == "experimental" else ""):
        if name and name in header:
            return name
    raise ConfigError(f"string_channels: channel {channel!r} is not a column of {path} "
                      f"(its header: {' '.join(header)}); the channels need a .links.detailed file")


def read_info(path: Path) -> pd.DataFrame:
    """protein.info: string_protein_id, preferred_name (first two columns)."""
    header = _header(path, "STRING protein.info file")
    if len(header) < 2 or header[0] != "string_protein_id":
        raise DataError(f"{path}, line 1: expected a STRING protein.info header "
                        f"'#string_protein_id<TAB>preferred_name...', got {' '.join(header[:4])!r}")
    info = _read_columns(path, ["protein", "name"], "STRING protein.info file")
    duplicated = info["protein"].duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        raise DataError(f"{path}, line {row + 2}: protein {info['protein'].iloc[row]!r} listed twice")
    return info


def _unique_gene_per_protein(proteins: pd.Series, genes: pd.Series) -> pd.Series:
    """protein -> gene for proteins whose rows name exactly one distinct gene."""
    pairs = pd.DataFrame({"protein": proteins, "gene": genes}).dropna().drop_duplicates()
    counts = pairs["protein"].value_counts()
    single = pairs[pairs["protein"].isin(counts.index[counts == 1])]
    return pd.Series(single["gene"].to_numpy(), index=single["protein"].to_numpy())


def protein_genes(info: pd.DataFrame, aliases: Path | None,
                  table: GeneTable) -> tuple[np.ndarray, dict, int]:
    """(Entrez ID int64 per info protein, -1 where unmapped; counts by how proteins mapped;
    rows of the aliases file)."""
    gene = pd.Series(np.nan, index=info["protein"].to_numpy(), dtype=object)
    counts, alias_rows = {}, 0
    if aliases is not None:
        header = _header(aliases, "STRING protein.aliases file")
        if len(header) < 3 or header[0] != "string_protein_id":
            raise DataError(f"{aliases}, line 1: expected a STRING protein.aliases header "
                            f"'#string_protein_id<TAB>alias<TAB>source', got {' '.join(header[:4])!r}")
        frame = _read_columns(aliases, ["protein", "alias", "source"], "STRING protein.aliases file")
        alias_rows = len(frame)
        known = set(table.entrez.tolist())
        by_entrez = frame["source"].str.contains("entrez", case=False) & frame["alias"].isin(known)
        tiers = [("alias_entrez", frame[by_entrez]["alias"]),
                 ("alias_symbol", frame["alias"].map(table.unique_symbols))]
        for name, genes in tiers:
            found = _unique_gene_per_protein(frame["protein"][genes.index], genes)
            found = found[found.index.isin(gene.index[gene.isna()])]
            gene[found.index] = found.to_numpy()
            counts[name] = len(found)
    todo = gene.isna().to_numpy()
    by_name = table.entrez_of(info["name"][todo].tolist(), report=False)[0]
    gene[todo] = by_name
    counts["preferred_name"] = sum(g is not None for g in by_name)
    ids = np.array([-1 if g is None or g != g else int(g) for g in gene.tolist()], dtype=np.int64)
    return ids, counts, alias_rows


def _links_line(path: Path, protein: str) -> int:
    """The first line of the links file naming `protein` (only run to word an error)."""
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if number > 1 and protein in line.split()[:2]:
                return number
    return 0


def read_links(path: Path, channels: list[str]) -> tuple[dict, dict]:
    """({"protein1": (codes int32 [rows], names), "protein2": ...}, {channel: scores int32 [rows]})."""
    header = _header(path, "STRING links file")
    if header[:2] != list(PROTEIN_COLUMNS):
        raise DataError(f"{path}, line 1: expected a STRING links header 'protein1 protein2 ...', "
                        f"got {' '.join(header[:4])!r}")
    columns = {c: channel_column(c, header, path) for c in channels}
    types = {p: pa.dictionary(pa.int32(), pa.string()) for p in PROTEIN_COLUMNS}
    types.update({column: pa.int32() for column in columns.values()})
    try:
        table = pacsv.read_csv(
            path, read_options=pacsv.ReadOptions(column_names=header, skip_rows=1, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(delimiter=" "),
            convert_options=pacsv.ConvertOptions(column_types=types,
                                                 include_columns=[*PROTEIN_COLUMNS, *columns.values()]))
    except (pa.ArrowInvalid, OSError, EOFError) as err:
        raise DataError(f"{path}: not a well-formed STRING links file ({str(err).splitlines()[0]})") from err
    proteins = {}
    for name in PROTEIN_COLUMNS:
        column = table.column(name).unify_dictionaries()
        names = column.chunk(0).dictionary.to_numpy(zero_copy_only=False) if column.num_chunks else np.array([])
        codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in column.chunks]) \
            if column.num_chunks else np.zeros(0, np.int32)
        proteins[name] = (codes, names)
    scores = {c: table.column(column).to_numpy() for c, column in columns.items()}
    return proteins, scores


def read_string(links: Path, info: Path, aliases: Path | None, table: GeneTable, min_score: int,
                channels: list[str]) -> tuple[dict[str, Layer], dict]:
    """Layers `string_<channel>` and the sources' report entries."""
    info_frame = read_info(info)
    genes_of_info, how, alias_rows = protein_genes(info_frame, aliases, table)
    proteins, scores = read_links(links, channels)
    position = pd.Index(info_frame["protein"])
    genes = {}
    for name, (codes, names) in proteins.items():
        where = position.get_indexer(names)
        if (where < 0).any():
            missing = str(names[np.flatnonzero(where < 0)[0]])
            raise DataError(f"{links}, line {_links_line(links, missing)}: protein {missing!r} "
                            f"is not in the info file {info}")
        genes[name] = genes_of_info[where][codes]
    rows = len(genes["protein1"])
    mapped = (genes["protein1"] >= 0) & (genes["protein2"] >= 0)
    used = np.union1d(proteins["protein1"][1], proteins["protein2"][1])
    used_genes = genes_of_info[position.get_indexer(used)]
    layers, dropped_all = {}, {}
    kept_any = np.zeros(rows, bool)
    for channel, score in scores.items():
        strong = score >= min_score
        keep = strong & mapped
        kept_any |= keep
        edges, loops = canonical(genes["protein1"][keep], genes["protein2"][keep], score[keep] / 1000.0)
        layers[f"string_{channel}"] = Layer(edges, mapped=int((used_genes >= 0).sum()),
                                            unmapped=used[used_genes < 0].tolist())
        dropped_all[channel] = {"score below string_min_score": int((~strong).sum()),
                                "protein mapped to no gene": int((strong & ~mapped).sum()),
                                "two proteins of one gene": loops,
                                "pair listed again (other direction or protein)":
                                    int(keep.sum()) - loops - edges.num_edges}
    single = len(dropped_all) == 1
    dropped = {(reason if single else f"{channel}: {reason}"): n
               for channel, reasons in dropped_all.items() for reason, n in reasons.items()}
    report = {"string": source_entry(links, rows, int(kept_any.sum()), dropped),
              "string_info": {**source_entry(info, len(info_frame), int((genes_of_info >= 0).sum()),
                                             {"protein mapped to no gene": int((genes_of_info < 0).sum())}),
                              "proteins_mapped_by": how}}
    if aliases is not None:
        report["string_aliases"] = source_entry(aliases, alias_rows, alias_rows)
    log.info("%s: %d rows; proteins mapped to genes by %s", links, rows, how)
    return layers, report
