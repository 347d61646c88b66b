"""The manifest: loading CSV/JSONL/Parquet, path resolution, and validation that reports every problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chronoclip.data.manifest import Manifest, labels_missing_from_train, load_manifest, parse_timestamp, write_manifest
from chronoclip.errors import ManifestError


@pytest.fixture
def media(tmp_path: Path) -> Path:
    """A folder with three small non-empty 'media' files (validation only checks existence and size)."""
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def _good_records(folder: Path) -> list[dict[str, object]]:
    return [
        {"path": folder / "a.mp4", "label": "left", "split": "train", "timestamp": "2024-05-01T10:00:00Z"},
        {"path": folder / "b.mp4", "label": "right", "split": "train", "start": 1.0, "end": 2.5},
        {"path": folder / "c.mp4", "label": "left", "split": "test", "text": "a red disc", "note": "extra"},
    ]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_round_trip_in_every_format(media: Path, suffix: str) -> None:
    path = write_manifest(_good_records(media), media / f"manifest{suffix}")
    manifest = load_manifest(path)
    assert len(manifest) == 3
    assert manifest[0]["path"] == (media / "a.mp4").resolve()
    assert manifest[0]["timestamp"] == pytest.approx(1714557600.0)
    assert manifest[1]["start"] == 1.0 and manifest[1]["end"] == 2.5
    assert manifest[2]["note"] == "extra"
    assert manifest.labels == ["left", "right"]
    assert manifest.splits == ["train", "test"]
    assert [r["path"].name for r in manifest.split("train")] == ["a.mp4", "b.mp4"]


def test_paths_are_written_relative_and_resolved_against_the_manifest_folder(media: Path) -> None:
    sub = media / "manifests"
    path = write_manifest(_good_records(media), sub / "m.csv")
    assert "../a.mp4" in path.read_text()
    assert load_manifest(path)[0]["path"] == (media / "a.mp4").resolve()


def test_every_problem_is_reported_with_its_row(media: Path) -> None:
    rows = [
        "path,label,split,timestamp,start,end",
        "a.mp4,left,train,2024-01-01,,",
        "missing.mp4,left,train,,,",  # row 2: missing file
        "a.mp4,right,train,,,",  # row 3: duplicate of row 1
        "b.mp4,left,holdout,,,",  # row 4: unknown split
        "c.mp4,up,test,,,",  # row 5: label only in test (fine for loading; classification runs refuse it)
        "c.mp4,left,val,nan,1,2",  # row 6: NaN timestamp
        "c.mp4,left,train,,5,2",  # row 7: end before start
        ",left,train,,,",  # row 8: empty path
    ]
    (media / "bad.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(media / "bad.csv")
    found = {(p.row, p.column) for p in caught.value.problems}
    assert found == {(2, "path"), (3, "path"), (4, "split"), (6, "timestamp"), (7, "end"), (8, "path")}
    message = str(caught.value)
    assert "bad.csv" in message and "row 2" in message and "missing.mp4" in message
    assert "duplicate of row 1" in message and "'holdout'" in message


def test_labels_missing_from_train_are_named_with_their_first_row(media: Path) -> None:
    rows = ["path,label,split,start,end", "a.mp4,left,train,,", "b.mp4,up,test,,", "c.mp4,up,val,,",
            "a.mp4,left,test,0,1"]
    (media / "m.csv").write_text("\n".join(rows) + "\n")
    problems = labels_missing_from_train(load_manifest(media / "m.csv"))
    assert [(p.row, p.column) for p in problems] == [(2, "label")]
    assert "'up' appears in 2 val/test row(s)" in problems[0].message


def test_empty_and_zero_length_files_are_problems(media: Path) -> None:
    (media / "empty.mp4").write_bytes(b"")
    write_manifest([{"path": media / "empty.mp4"}], media / "m.csv")
    with pytest.raises(ManifestError, match="0 bytes"):
        load_manifest(media / "m.csv")
    (media / "none.csv").write_text("path,label\n")
    with pytest.raises(ManifestError, match="no rows"):
        load_manifest(media / "none.csv")


def test_missing_path_column_and_unknown_format(media: Path) -> None:
    (media / "m.csv").write_text("file,label\na.mp4,x\n")
    with pytest.raises(ManifestError, match="no 'path' column"):
        load_manifest(media / "m.csv")
    (media / "m.tsv").write_text("path\n")
    with pytest.raises(ManifestError, match="unknown manifest format"):
        load_manifest(media / "m.tsv")
    with pytest.raises(ManifestError, match="not found"):
        load_manifest(media / "nope.csv")


def test_bad_jsonl_lines_are_all_reported(media: Path) -> None:
    lines = [json.dumps({"path": "a.mp4"}), "{not json", "[1, 2]", json.dumps({"path": "b.mp4"})]
    (media / "m.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(media / "m.jsonl")
    assert [p.row for p in caught.value.problems] == [2, 3]


def test_check_files_can_be_skipped(media: Path) -> None:
    write_manifest([{"path": media / "later.mp4", "split": "0"}], media / "m.csv")
    manifest = load_manifest(media / "m.csv", check_files=False)
    assert manifest.splits == ["0"]


def test_split_selection_errors_name_the_available_splits(media: Path) -> None:
    manifest = load_manifest(write_manifest(_good_records(media), media / "m.csv"))
    with pytest.raises(ManifestError, match=r"splits present are \['train', 'test'\]"):
        manifest.split("val")
    assert isinstance(manifest.split("train", "test"), Manifest)


def test_folds_sort_numerically(media: Path) -> None:
    records = [{"path": media / "a.mp4", "split": str(k)} for k in (10, 2, 1)]
    records = [dict(r, start=float(i), end=float(i) + 1) for i, r in enumerate(records)]
    manifest = load_manifest(write_manifest(records, media / "m.csv"))
    assert manifest.splits == ["1", "2", "10"]


@pytest.mark.parametrize(("value", "seconds"), [
    ("12.5", 12.5), (3, 3.0), ("1970-01-01T00:01:00", 60.0), ("1970-01-01T01:00:00+01:00", 0.0),
])
def test_parse_timestamp(value: object, seconds: float) -> None:
    assert parse_timestamp(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["yesterday", "inf", float("nan")])
def test_parse_timestamp_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(value)


def test_relative_path_objects_are_rebased_onto_the_manifest_folder(media: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(media.parent)
    relative = Path(media.name) / "a.mp4"  # relative to the working directory, as `--out runs/x` gives
    path = write_manifest([{"path": relative}], Path(media.name) / "out" / "m.csv")
    assert path.read_text().splitlines()[1] == "../a.mp4"
    assert load_manifest(path)[0]["path"] == (media / "a.mp4").resolve()
