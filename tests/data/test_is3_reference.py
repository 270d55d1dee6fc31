"""IS3 on-screen classes: the fixed rule (from the annotation) and the reference's rule (paper mode, Q16)."""

from __future__ import annotations

from vsslrt.data import is3
from vsslrt.data.datasets import load_dataset
from vsslrt.data.loader import BatchLoader
from vsslrt.data.negatives import choose_offscreen, offscreen_plan


def _listing(order):
    """os.listdir stand-in: `order` first (directory order decides the reference's first two matches)."""
    real = is3.os.listdir

    def listdir(path):
        names = real(path)
        return [n for n in order if n in names] + [n for n in names if n not in order]

    return listdir


def test_reference_rule_can_leave_an_onscreen_class_among_the_candidates(is3_dir, monkeypatch):
    # "bird_dog_*": its glob prefix "bird_dog" also matches "bird_dog_7_bird" (another image); listed
    # first, the first two matches are both "bird" targets, so the reference never excludes "dog".
    monkeypatch.setattr(is3.os, "listdir", _listing(["bird_dog_7_bird.jpg", "bird_dog_bird.jpg", "bird_dog_dog.jpg"]))
    ds = load_dataset("is3", is3_dir)
    bird_dog = ds.names.index("bird_dog_bird")
    assert ds[bird_dog].onscreen == ("bird", "dog")  # fixed: both objects of the image
    assert ds[bird_dog].onscreen_reference == ("bird",)  # paper: the reference's two glob matches
    assert ds.offscreen_classes(bird_dog) == ["car", "piano"]
    assert ds.offscreen_classes(bird_dog, "paper") == ["car", "dog", "piano"]
    # A name with an id matches its own pair only: both rules agree.
    dog_piano = ds.names.index("dog_piano_11_dog")
    assert ds[dog_piano].onscreen_reference == ("dog", "piano") == ds[dog_piano].onscreen
    # "bird_dog_7": one match, where the reference raises IndexError: its class is excluded, with a note.
    assert ds[ds.names.index("bird_dog_7_bird")].onscreen_reference == ("bird",)
    # recorded as provenance of paper mode, not as a warning every fixed-mode user would see
    note = ds.sources["paper_mode_onscreen_notes"]
    assert "bird_dog_7*" in note and "IndexError" in note
    assert not any("IndexError" in p.message for p in ds.problems)

    owner = {clip.name: cls for cls, clips in ds.class_clips.items() for clip in clips}
    fixed = {owner[choose_offscreen(ds, bird_dog, run_seed=0, repetition=r).name] for r in range(60)}
    paper = {owner[choose_offscreen(ds, bird_dog, run_seed=0, repetition=r, mode="paper").name] for r in range(60)}
    assert "dog" not in fixed and "bird" not in fixed
    assert "dog" in paper and "bird" not in paper
    # The loader draws with its protocol mode.
    plan = offscreen_plan(ds, [bird_dog], run_seed=0, repeats=60, mode="paper")
    assert {owner[rep[0].name] for rep in plan} == paper


def test_other_listing_orders_exclude_both_objects(is3_dir, monkeypatch):
    monkeypatch.setattr(is3.os, "listdir", _listing(["bird_dog_bird.jpg", "bird_dog_dog.jpg", "bird_dog_7_bird.jpg"]))
    ds = load_dataset("is3", is3_dir)
    assert ds[ds.names.index("bird_dog_dog")].onscreen_reference == ("bird", "dog")


def test_without_an_image_folder_paper_mode_keeps_the_annotation_classes(is3_dir):
    for f in (is3_dir / "images").iterdir():
        f.unlink()
    (is3_dir / "images").rmdir()
    ds = load_dataset("is3", is3_dir, validate=False)
    assert all(s.onscreen_reference is None for s in ds)
    assert ds.offscreen_classes(0, "paper") == ds.offscreen_classes(0)


def test_loader_passes_its_mode_to_the_offscreen_plan(is3_dir, monkeypatch):
    monkeypatch.setattr(is3.os, "listdir", _listing(["bird_dog_7_bird.jpg", "bird_dog_bird.jpg", "bird_dog_dog.jpg"]))
    ds = load_dataset("is3", is3_dir)
    for mode in ("fixed", "paper"):
        loader = BatchLoader(ds, "ezvsl", mode=mode, repeats=5, run_seed=3, workers=0)
        assert loader.plan == offscreen_plan(ds, run_seed=3, repeats=5, mode=mode)
