"""Duet (two-source mixture) lists over a folder an existing adapter reads: VGG-SS or a manifest.

protocols-extended.md section 7a: AVGN's `vggss_duet_test.csv` has the columns
`id,class,mix_id,mix_class`; each row pairs a test clip (`id`) with a partner clip (`mix_id`) and
makes one mixture of P = 2 panels: the two clips' frames, each with its own ground truth. A plain
two-column `id,mix_id` list is read too. The header row is optional; the class columns are not
used (each panel's ground truth and class come from the base adapter).

The samples are the base adapter's, unchanged, so a bench run's single-source metrics are those of
the base set; the mixtures are an index over them (`DuetDataset.mixtures`: sample indices, one row
per mixture, in list order). Each clip is a sample once however many mixtures use it, so its frame
and its sound are embedded once.

Bad rows are problems, all listed at once before the first batch (`validate_dataset`):

* a malformed row (not 2 or 4 columns, an empty id) and a row pairing a clip with itself: errors;
* a row naming a clip the folder does not have: an error, which `--skip-bad` turns into a
  left-out mixture (`DuetDataset.without_unknown_clips`), as it leaves out samples with missing files;
* a repeated pair: a warning (the mixture is evaluated twice).
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from vsslrt.data.manifest import load_manifest
from vsslrt.data.problems import Problem, ProblemList
from vsslrt.data.records import Dataset, resolve_metadata
from vsslrt.data.vggss import load_vggss
from vsslrt.errors import DataError

DUET_LISTS = ("vggss_duet_test.csv", "duet_test.csv")  # AVGN's name first, then the generic one
FULL_COLUMNS = ("id", "class", "mix_id", "mix_class")
SHORT_COLUMNS = ("id", "mix_id")
PANELS = 2  # a duet: the test clip and its partner
DUET_KINDS = ("vggss-duet", "manifest-duet")  # the KINDS rows of vsslrt.data.datasets this module loads


@dataclass(eq=False)
class DuetDataset(Dataset):
    """A base test set plus a list of two-clip mixtures.

    Attributes:
        mixtures: per mixture, the sample indices of its panels (test clip, partner), in list order.
        mixture_rows: per mixture, "file:line" of its row in the duet list (for reports).
        unknown_clip_rows: the error problems of rows naming a clip the folder lacks (also in
            `problems`); `without_unknown_clips` drops them with --skip-bad.
    """

    mixtures: tuple[tuple[int, int], ...] = ()
    mixture_rows: tuple[str, ...] = ()
    unknown_clip_rows: tuple[Problem, ...] = ()

    def without_unknown_clips(self) -> DuetDataset:
        """--skip-bad: the rows naming clips the folder lacks become warnings (left out, listed)."""
        drop = set(map(id, self.unknown_clip_rows))
        problems = [p for p in self.problems if id(p) not in drop]
        problems += [Problem(p.where, f"left out (--skip-bad): {p.message}", "warning") for p in self.unknown_clip_rows]
        return dataclasses.replace(self, problems=problems, unknown_clip_rows=())


def read_duet_list(path: Path, names: dict[str, int],
                   problems: ProblemList) -> tuple[list[tuple[int, int]], list[str], list[Problem]]:
    """The mixtures of a duet list as sample-index pairs; bad rows become problems.

    Args:
        path: The list file.
        names: Clip id -> sample index of the base dataset.
        problems: Where the bad rows go.

    Returns:
        (mixtures, their rows "file:line", the problems of rows naming unknown clips).
    """
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: expected a readable duet list, got {exc}.", hint="check the file") from None
    start = 0
    if rows and tuple(c.strip().lower() for c in rows[0]) in (FULL_COLUMNS, SHORT_COLUMNS):
        start = 1
    mixtures: list[tuple[int, int]] = []
    where_of: list[str] = []
    unknown: list[Problem] = []
    seen: dict[tuple[str, str], str] = {}
    for line, row in enumerate(rows[start:], start=start + 1):
        if not row or not any(c.strip() for c in row):
            continue
        where = f"{path}:{line}"
        cells = [c.strip() for c in row]
        if len(cells) not in (len(FULL_COLUMNS), len(SHORT_COLUMNS)):
            problems.error(where, f"expected id,class,mix_id,mix_class or id,mix_id, got {','.join(row)[:80]!r}; "
                                  "fix or delete the row")
            continue
        clip, partner = cells[0], cells[2 if len(cells) == len(FULL_COLUMNS) else 1]
        if not clip or not partner:
            problems.error(where, f"expected two clip ids, got an empty id in {','.join(row)[:80]!r}; "
                                  "fix or delete the row")
            continue
        if clip == partner:
            problems.error(where, f"expected two different clips, got clip {clip} paired with itself; "
                                  "pair it with another clip or delete the row")
            continue
        missing = [c for c in (clip, partner) if c not in names]
        if missing:
            before = len(problems.items)
            problems.error(where, f"names clip{'s' if len(missing) > 1 else ''} {', '.join(missing)}, which the data "
                                  "folder does not have (no record); add the clip, delete the row, or pass --skip-bad")
            unknown.extend(problems.items[before:])
            continue
        pair = (clip, partner)
        if pair in seen:
            problems.warning(where, f"repeats the mixture {clip} + {partner} of {seen[pair]}: it is evaluated twice")
        seen.setdefault(pair, where)
        mixtures.append((names[clip], names[partner]))
        where_of.append(where)
    if not mixtures and not problems.errors:
        raise DataError(f"{path}: expected at least one mixture row, got none.",
                        hint="one row per mixture: id,class,mix_id,mix_class (AVGN) or id,mix_id")
    return mixtures, where_of, unknown


def _duet(base: Dataset, kind: str, metadata_dir: Path) -> DuetDataset:
    problems = ProblemList()
    path = resolve_metadata(None, metadata_dir, DUET_LISTS, "duet list", "--metadata-dir")
    names = {s.name: s.index for s in base.samples}
    mixtures, rows, unknown = read_duet_list(path, names, problems)
    return DuetDataset(kind, base.root, base.samples, base.class_clips, {**base.sources, "duet_list": str(path)},
                       [*base.problems, *problems.items], mixtures=tuple(mixtures), mixture_rows=tuple(rows),
                       unknown_clip_rows=tuple(unknown))


def load_vggss_duet(root: Path, *, metadata_dir: Path, annotation_file: str | Path | None = None,
                    class_dict_file: str | Path | None = None) -> DuetDataset:
    """VGG-SS (its annotations and class dictionary) plus the duet list `vggss_duet_test.csv`."""
    base = load_vggss(root, metadata_dir=metadata_dir, annotation_file=annotation_file, class_dict_file=class_dict_file)
    return _duet(base, DUET_KINDS[0], metadata_dir)


def load_manifest_duet(root: Path, *, metadata_dir: Path, manifest_file: str | Path | None = None) -> DuetDataset:
    """A manifest dataset plus a duet list (`vggss_duet_test.csv` or `duet_test.csv`) naming its samples."""
    base = load_manifest(root, manifest_file=manifest_file)
    return _duet(base, DUET_KINDS[1], metadata_dir)
