"""The dataset kinds: one table from a kind's name to its adapter, and the `load_dataset` entry point.

An adapter module (vggss, is3, flickr, manifest) reads a folder and its metadata files into a
`vsslrt.data.records.Dataset`; this table is the one list of them, and the CLI's `--dataset`
choices are built from it. A new dataset is an adapter module plus one row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vsslrt.data.avsbench import load_avsbench
from vsslrt.data.duet import load_manifest_duet, load_vggss_duet
from vsslrt.data.extended import load_extended_flickr, load_extended_vggss
from vsslrt.data.flickr import load_flickr
from vsslrt.data.is3 import load_is3
from vsslrt.data.manifest import load_manifest
from vsslrt.data.records import Dataset
from vsslrt.data.validation import validate_dataset
from vsslrt.data.vggss import load_vggss
from vsslrt.errors import DataError, InputError


@dataclass(frozen=True)
class MetadataFiles:
    """The metadata files a user may name on the command line (None: the official name in the folder)."""

    metadata_dir: Path
    annotation_file: str | Path | None = None
    class_dict_file: str | Path | None = None
    box_file: str | Path | None = None


@dataclass(frozen=True)
class DatasetKind:
    name: str
    summary: str
    load: Callable[[Path, MetadataFiles], Dataset]


KINDS: dict[str, DatasetKind] = {
    k.name: k
    for k in (
        DatasetKind("vggss", "VGG-SS: frames/, audio/, vggss.json and the class dictionary",
                    lambda root, m: load_vggss(root, metadata_dir=m.metadata_dir, annotation_file=m.annotation_file,
                                               class_dict_file=m.class_dict_file)),
        DatasetKind("is3", "IS3: images/, audio_wav/, synthetic3240_bbox.json and the class dictionary",
                    lambda root, m: load_is3(root, metadata_dir=m.metadata_dir, annotation_file=m.annotation_file,
                                             class_dict_file=m.class_dict_file, box_file=m.box_file)),
        DatasetKind("flickr", "Flickr-SoundNet: frames/, audio/, Annotations/*.xml and flickr_test.csv",
                    lambda root, m: load_flickr(root, metadata_dir=m.metadata_dir, annotation_dir=m.annotation_file)),
        DatasetKind("manifest", "your own data: manifest.jsonl or manifest.csv in the folder",
                    lambda root, m: load_manifest(root, manifest_file=m.annotation_file)),
        DatasetKind("flickr-ext", "Extended Flickr-SoundNet: the flickr files plus flickr_test_plus_silent.csv",
                    lambda root, m: load_extended_flickr(root, metadata_dir=m.metadata_dir,
                                                         annotation_dir=m.annotation_file)),
        DatasetKind("vggss-ext", "Extended VGG-SS: the vggss files plus vggss_test_plus_silent.csv (vggss_test.csv)",
                    lambda root, m: load_extended_vggss(root, metadata_dir=m.metadata_dir,
                                                        annotation_file=m.annotation_file,
                                                        class_dict_file=m.class_dict_file)),
        DatasetKind("avsbench-s4", "AVSBench S4: visual_frames/, gt_masks/, audio_wav/ and s4_meta_data.csv (mask GT)",
                    lambda root, m: load_avsbench(root, "s4", metadata_dir=m.metadata_dir, annotation_file=m.annotation_file)),
        DatasetKind("avsbench-ms3", "AVSBench MS3: visual_frames/, gt_masks/, audio_wav/ and ms3_meta_data.csv (mask GT)",
                    lambda root, m: load_avsbench(root, "ms3", metadata_dir=m.metadata_dir, annotation_file=m.annotation_file)),
        DatasetKind("is3-masks", "IS3 with its gt_segmentation/ masks as the ground truth (instead of the boxes)",
                    lambda root, m: load_is3(root, metadata_dir=m.metadata_dir, annotation_file=m.annotation_file,
                                             class_dict_file=m.class_dict_file, box_file=m.box_file, masks=True)),
        DatasetKind("vggss-duet", "VGG-SS two-source mixtures: the vggss files plus vggss_duet_test.csv (AVGN's duet list)",
                    lambda root, m: load_vggss_duet(root, metadata_dir=m.metadata_dir, annotation_file=m.annotation_file,
                                                    class_dict_file=m.class_dict_file)),
        DatasetKind("manifest-duet", "two-source mixtures of your own data: a manifest plus duet_test.csv (id,mix_id)",
                    lambda root, m: load_manifest_duet(root, metadata_dir=m.metadata_dir, manifest_file=m.annotation_file)),
    )
}

DATASET_KINDS: tuple[str, ...] = tuple(KINDS)


def load_dataset(
    kind: str,
    data_dir: str | Path,
    *,
    metadata_dir: str | Path | None = None,
    annotation_file: str | Path | None = None,
    class_dict_file: str | Path | None = None,
    box_file: str | Path | None = None,
    validate: bool = True,
    check_headers: bool = False,
) -> Dataset:
    """Load a test set.

    Metadata files are looked up in `metadata_dir` (default: `data_dir`) under the names the official
    releases use, unless given explicitly:

    * vggss: `vggss_annotations.json` (or `vggss.json`), `vggss_class_files_dict.json` (or
      `class_files_dict.json`; without it, classes come from the annotations' "class" field);
      media in `frames/{file}.jpg`, `audio/{file}.wav`.
    * is3: `synthetic3240_bbox.json` (boxes; `box_file`), `IS3_annotation.json` (sample list; the box
      file's records when absent), `IS3_class_files_dict.json` (or `class_files_dict.json`; derived
      from the names' last token when absent, with a warning); media in `images/`, `audio_wav/`.
    * flickr: XML boxes in `Annotations/` (`annotation_file` may name another folder), the sample list
      `flickr_test.csv` (all annotated ids when absent); media in `frames/{id}.jpg`, `audio/{id}.wav`.
    * manifest: `manifest.jsonl` or `manifest.csv` in `data_dir` (see `vsslrt.data.manifest`).

    Args:
        kind: One of "vggss", "is3", "flickr", "manifest".
        data_dir: The dataset folder.
        metadata_dir: Where the metadata files are (default: data_dir).
        annotation_file: The annotation / sample list file (or Flickr's annotation folder).
        class_dict_file: The class -> clips dictionary.
        box_file: IS3's box file.
        validate: Check files and records before returning (raises DatasetProblemsError).
        check_headers: Also open every image and audio header during validation (catches corrupt files
            early; costs one small read per file).

    Returns:
        The dataset.

    Raises:
        InputError: Unknown kind.
        DataError: Metadata missing or unreadable; DatasetProblemsError when validation finds errors.
    """
    key = str(kind).lower()
    if key not in KINDS:
        raise InputError(
            f"dataset: expected one of {', '.join(DATASET_KINDS)}, got {kind!r}.",
            hint="use --dataset manifest with a manifest.jsonl for your own data",
        )
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"data folder: expected a directory at {root}, got no such directory.", hint="check --data-dir")
    meta = Path(metadata_dir) if metadata_dir is not None else root
    dataset = KINDS[key].load(root, MetadataFiles(meta, annotation_file, class_dict_file, box_file))
    if validate:
        validate_dataset(dataset, check_headers=check_headers, raise_on_error=True)
    return dataset
