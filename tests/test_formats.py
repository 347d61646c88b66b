"""Importers on small fixture trees in the official layouts, and their error reports."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import ExifTags, Image

from chronoclip.data.formats import IMPORTERS, SourceProblem, import_dataset, list_formats
from chronoclip.data.formats.common import assign_splits
from chronoclip.errors import ConfigError, ManifestError


def touch(path: Path) -> Path:
    """A placeholder media file (one byte: the path importers only check that it exists and is not empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0")
    return path


def write(path: Path, text: str, newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", newline).encode())
    return path


def rows(manifest: Path) -> list[dict[str, str]]:
    with open(manifest, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def problems_of(error: pytest.ExceptionInfo[ManifestError]) -> set[tuple[str, int | None]]:
    """``(file, line)`` of every problem (all importer problems are :class:`SourceProblem`)."""
    assert all(isinstance(p, SourceProblem) for p in error.value.problems)
    return {(p.file, p.row) for p in error.value.problems if isinstance(p, SourceProblem)}


# ---------------------------------------------------------------- registry


def test_registry_lists_every_format_and_rejects_unknown_ones(tmp_path: Path) -> None:
    assert list_formats() == ["domainnet", "esc50", "hmdb51", "kinetics", "timelapse", "ucf101"]
    assert all(IMPORTERS[name].option_help() is not None for name in list_formats())
    with pytest.raises(ConfigError, match="choose one of: domainnet, esc50"):
        import_dataset("ucf102", tmp_path, tmp_path / "out")
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['splt'\].*split \(official split"):
        import_dataset("ucf101", tmp_path, tmp_path / "out", splt=2)
    with pytest.raises(ConfigError, match="splits 1, 2 and 3"):
        import_dataset("ucf101", tmp_path, tmp_path / "out", split="4")


# ---------------------------------------------------------------- UCF101

UCF_CLASSES = ("ApplyEyeMakeup", "Archery", "BabyCrawling")


def ucf_tree(root: Path) -> Path:
    """UCF-101/<Class>/v_<Class>_gXX_c01.avi for groups 1-4, and the official lists (CRLF, like the zip)."""
    for name in UCF_CLASSES:
        for group in range(1, 5):
            touch(root / "UCF-101" / name / f"v_{name}_g{group:02d}_c01.avi")
    splits = root / "ucfTrainTestlist"
    write(splits / "classInd.txt", "".join(f"{i} {c}\n" for i, c in enumerate(UCF_CLASSES, 1)), "\r\n")
    for number, test_groups in ((1, (1,)), (2, (1, 2))):
        train = [f"{c}/v_{c}_g{g:02d}_c01.avi {i}\n" for i, c in enumerate(UCF_CLASSES, 1)
                 for g in range(1, 5) if g not in test_groups]
        test = [f"{c}/v_{c}_g{g:02d}_c01.avi\n" for c in UCF_CLASSES for g in test_groups]
        write(splits / f"trainlist0{number}.txt", "".join(train), "\r\n")
        write(splits / f"testlist0{number}.txt", "".join(test), "\r\n")
    return root


def test_ucf101_reads_official_lists_into_a_manifest_outside_the_root(tmp_path: Path) -> None:
    root = ucf_tree(tmp_path / "UCF101")
    manifest = import_dataset("ucf101", root, tmp_path / "manifests" / "ucf", split="2")  # CLI-style string
    table = rows(manifest)
    assert len(table) == 12
    assert sum(r["split"] == "train" for r in table) == 6 and sum(r["split"] == "test" for r in table) == 6
    first = table[0]
    assert first["path"] == "../../UCF101/UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g03_c01.avi"
    assert (manifest.parent / first["path"]).is_file()
    # Index 2 of classInd.txt (1-based) is Archery: every train row labelled 2 is in Archery/.
    assert {r["label"] for r in table if "/Archery/" in r["path"]} == {"Archery"}
    assert {r["label"] for r in table} == set(UCF_CLASSES)
    assert not (manifest.parent / "skipped.txt").exists()
    split1 = rows(import_dataset("ucf101", root, tmp_path / "s1"))
    assert sum(r["split"] == "test" for r in split1) == 3


def test_ucf101_reports_every_problem_with_file_and_line(tmp_path: Path) -> None:
    root = ucf_tree(tmp_path / "UCF101")
    (root / "UCF-101" / "Archery" / "v_Archery_g02_c01.avi").unlink()  # trainlist01.txt line 4
    lists = root / "ucfTrainTestlist"
    with open(lists / "trainlist01.txt", "a") as handle:
        handle.write("Archery/v_Archery_g09_c01.avi\n")  # line 10: no class index
        handle.write("Archery/v_Archery_g03_c01.avi 7\n")  # line 11: index not in classInd
        handle.write("Archery/v_Archery_g04_c01.avi 1\n")  # line 12: index 1 is ApplyEyeMakeup
    with open(lists / "testlist01.txt", "a") as handle:
        handle.write("Juggling/v_Juggling_g01_c01.avi\n")  # line 4: unknown class
    with pytest.raises(ManifestError) as error:
        import_dataset("ucf101", root, tmp_path / "out")
    train, test = "ucfTrainTestlist/trainlist01.txt", "ucfTrainTestlist/testlist01.txt"
    assert problems_of(error) == {(train, 4), (train, 10), (train, 11), (train, 12), (test, 4)}
    message = str(error.value)
    assert "5 problem(s)" in message and f"{train} line 10: expected '<path> <integer>'" in message
    assert "unknown class 'Juggling'" in message and "class index 1 is 'ApplyEyeMakeup'" in message
    assert "path not found: UCF-101/Archery/v_Archery_g02_c01.avi" in message
    assert not (tmp_path / "out" / "manifest.csv").exists()


def test_ucf101_allow_missing_skips_and_lists_missing_videos(tmp_path: Path) -> None:
    root = ucf_tree(tmp_path / "UCF101")
    (root / "UCF-101" / "Archery" / "v_Archery_g02_c01.avi").unlink()
    (root / "UCF-101" / "Archery" / "v_Archery_g03_c01.avi").write_bytes(b"")  # empty counts as unusable
    manifest = import_dataset("ucf101", root, tmp_path / "out", allow_missing=True)
    assert len(rows(manifest)) == 10
    skipped = (tmp_path / "out" / "skipped.txt").read_text().splitlines()
    assert skipped == [
        "ucfTrainTestlist/trainlist01.txt line 4: path not found: UCF-101/Archery/v_Archery_g02_c01.avi",
        "ucfTrainTestlist/trainlist01.txt line 5: path is empty (0 bytes): "
        "UCF-101/Archery/v_Archery_g03_c01.avi",
    ]


# ---------------------------------------------------------------- HMDB51


def hmdb_tree(root: Path) -> Path:
    splits = root / "testTrainMulti_7030_splits"
    for label in ("brush_hair", "cartwheel"):
        for n in range(1, 5):
            touch(root / label / f"{label}_video_{n}.avi")
        # Official files end every line with a space; flag 0 = unused in this split.
        flags = (1, 1, 2, 0)
        lines = "".join(f"{label}_video_{n}.avi {flag} \n" for n, flag in enumerate(flags, start=1))
        write(splits / f"{label}_test_split1.txt", lines)
        write(splits / f"{label}_test_split2.txt", lines.replace(" 1 ", " 2 ", 1))
    return root


def test_hmdb51_reads_split_flags(tmp_path: Path) -> None:
    root = hmdb_tree(tmp_path / "hmdb51")
    table = rows(import_dataset("hmdb51", root, tmp_path / "out"))
    assert len(table) == 6  # video 4 of each class is unused (flag 0)
    assert [(r["path"].split("/")[-1], r["label"], r["split"]) for r in table[:3]] == [
        ("brush_hair_video_1.avi", "brush_hair", "train"),
        ("brush_hair_video_2.avi", "brush_hair", "train"),
        ("brush_hair_video_3.avi", "brush_hair", "test"),
    ]
    split2 = rows(import_dataset("hmdb51", root, tmp_path / "out2", split=2))
    assert sum(r["split"] == "test" for r in split2) == 4


def test_hmdb51_reports_bad_flags_missing_videos_and_unknown_classes(tmp_path: Path) -> None:
    root = hmdb_tree(tmp_path / "hmdb51")
    splits = root / "testTrainMulti_7030_splits"
    write(splits / "cartwheel_test_split1.txt", "cartwheel_video_1.avi 3\ncartwheel_video_9.avi 1\nbroken\n")
    write(splits / "juggle_test_split1.txt", "juggle_video_1.avi 1\n")
    with pytest.raises(ManifestError) as error:
        import_dataset("hmdb51", root, tmp_path / "out")
    cartwheel = "testTrainMulti_7030_splits/cartwheel_test_split1.txt"
    juggle = "testTrainMulti_7030_splits/juggle_test_split1.txt"
    assert problems_of(error) == {(cartwheel, 1), (cartwheel, 2), (cartwheel, 3), (juggle, None)}
    assert "unknown class 'juggle'" in str(error.value)


# ---------------------------------------------------------------- Kinetics


def kinetics_tree(root: Path) -> Path:
    notes = root / "annotations"
    write(notes / "kinetics_train.csv", "label,youtube_id,time_start,time_end,split\n"
          "abseiling,aaa,0,10,train\n\"air drumming\",bbb,14,24,train\nabseiling,ccc,5,15,train\n")
    write(notes / "kinetics_val.csv", "label,youtube_id,time_start,time_end,split\n"
          "air drumming,ddd,30,40,val\n")
    write(notes / "kinetics_test.csv", "youtube_id,time_start,time_end,split\neee,1,11,test\n")
    touch(root / "videos_train" / "abseiling" / "aaa_000000_000010.mp4")
    touch(root / "videos_train" / "air_drumming" / "bbb_000014_000024.mp4")
    touch(root / "raw" / "ddd.mkv")  # an untrimmed download: the row keeps start/end
    touch(root / "videos_test" / "eee_000001_000011.mp4")
    return root  # ccc (train line 4) is missing, as YouTube takedowns make normal


def test_kinetics_reports_missing_videos_then_skips_them_when_allowed(tmp_path: Path) -> None:
    root = kinetics_tree(tmp_path / "k400")
    with pytest.raises(ManifestError) as error:
        import_dataset("kinetics", root, tmp_path / "out")
    assert problems_of(error) == {("annotations/kinetics_train.csv", 4)}
    assert "1 sample(s) are unusable" in str(error.value) and "ccc_000005_000015.mp4" in str(error.value)

    table = rows(import_dataset("kinetics", root, tmp_path / "out", allow_missing="true"))
    by_id = {Path(r["path"]).name.split("_")[0].split(".")[0]: r for r in table}
    assert sorted(by_id) == ["aaa", "bbb", "ddd", "eee"]
    assert by_id["bbb"]["label"] == "air drumming" and by_id["bbb"]["start"] == ""
    assert (by_id["ddd"]["split"], by_id["ddd"]["start"], by_id["ddd"]["end"]) == ("val", "30.0", "40.0")
    assert (by_id["eee"]["split"], by_id["eee"]["label"]) == ("test", "")
    assert "kinetics_train.csv line 4" in (tmp_path / "out" / "skipped.txt").read_text()


def test_kinetics_reports_malformed_rows(tmp_path: Path) -> None:
    root = kinetics_tree(tmp_path / "k400")
    write(root / "annotations" / "kinetics_val.csv", "label,youtube_id,time_start,time_end,split\n"
          "air drumming,ddd,3o,40,val\n,fff,0,10,val\nx,ggg,0,10,holdout\nx,hhh,0,10\n")
    with pytest.raises(ManifestError) as error:
        import_dataset("kinetics", root, tmp_path / "out", allow_missing=True)
    assert problems_of(error) == {("annotations/kinetics_val.csv", line) for line in (2, 3, 4, 5)}


# ---------------------------------------------------------------- ESC-50


def esc50_tree(root: Path) -> Path:
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    for fold in range(1, 6):
        for target, category, esc10 in ((0, "dog", "True"), (19, "thunderstorm", "False")):
            name = f"{fold}-1000{target}-A-{target}.wav"
            lines.append(f"{name},{fold},{target},{category},{esc10},1000{target},A")
            touch(root / "audio" / name)
    write(root / "meta" / "esc50.csv", "\n".join(lines) + "\n")
    return root


def test_esc50_uses_the_official_folds_and_keeps_esc10(tmp_path: Path) -> None:
    root = esc50_tree(tmp_path / "ESC-50-master")
    table = rows(import_dataset("esc50", root, tmp_path / "out"))
    assert len(table) == 10
    assert sorted({r["split"] for r in table}) == ["1", "2", "3", "4", "5"]
    assert table[0] == {"path": "../ESC-50-master/audio/1-10000-A-0.wav", "label": "dog", "split": "1",
                        "esc10": "True"}
    esc10 = rows(import_dataset("esc50", root, tmp_path / "out10", esc10_only="yes"))
    assert {r["label"] for r in esc10} == {"dog"} and len(esc10) == 5


def test_esc50_reports_bad_folds_and_missing_clips(tmp_path: Path) -> None:
    root = esc50_tree(tmp_path / "ESC-50-master")
    meta = root / "meta" / "esc50.csv"
    bad = "9-1-A-0.wav,9,0,dog,True,1,A\n6-1-A-0.wav,1,0,dog,True,1,A\n1-2-A-0.wav,1\n"  # lines 12-14
    write(meta, meta.read_text() + bad)
    with pytest.raises(ManifestError) as error:
        import_dataset("esc50", root, tmp_path / "out")
    assert problems_of(error) == {("meta/esc50.csv", 12), ("meta/esc50.csv", 13), ("meta/esc50.csv", 14)}


# ---------------------------------------------------------------- DomainNet / PACS / Office


def domainnet_tree(root: Path) -> Path:
    classes = ("aircraft_carrier", "bee")
    for domain in ("clipart", "real"):
        for split, numbers in (("train", (1, 2)), ("test", (3,))):
            lines = []
            for index, label in enumerate(classes):
                for n in numbers:
                    relative = f"{domain}/{label}/{domain}_{index:03d}_{n:06d}.jpg"
                    touch(root / relative)
                    lines.append(f"{relative} {index}\n")
            write(root / f"{domain}_{split}.txt", "".join(lines))
    return root


def test_domainnet_lists_give_domain_label_and_split(tmp_path: Path) -> None:
    root = domainnet_tree(tmp_path / "domainnet")
    table = rows(import_dataset("domainnet", root, tmp_path / "out"))
    assert len(table) == 12
    assert table[0] == {"path": "../domainnet/clipart/aircraft_carrier/clipart_000_000003.jpg",
                        "label": "aircraft_carrier", "split": "test", "domain": "clipart"}
    assert {(r["domain"], r["split"]) for r in table} == {
        (domain, split) for domain in ("clipart", "real") for split in ("train", "test")}
    real = rows(import_dataset("domainnet", root, tmp_path / "real", domains="real"))
    assert {r["domain"] for r in real} == {"real"} and len(real) == 6


def test_domainnet_reports_index_conflicts_bad_lines_and_unknown_domains(tmp_path: Path) -> None:
    root = domainnet_tree(tmp_path / "domainnet")
    with open(root / "real_test.txt", "a") as handle:
        handle.write("real/bee/real_001_000009.jpg 0\n")  # line 3: index 0 is aircraft_carrier
        handle.write("real_001_000010.jpg 1\n")  # line 4: no class folder
    with pytest.raises(ManifestError) as error:
        import_dataset("domainnet", root, tmp_path / "out", domains=("real", "sketch"))
    assert problems_of(error) == {("real_test.txt", 3), ("real_test.txt", 4), (str(root), None)}
    message = str(error.value)
    assert "unknown domain(s) ['sketch']; available: ['clipart', 'real']" in message
    assert "class index 0 is 'bee' here but 'aircraft_carrier' at real_test.txt line 1" in message


def test_domain_folder_tree_with_holdout(tmp_path: Path) -> None:
    root = tmp_path / "office31"
    for domain in ("amazon", "webcam"):
        for label in ("back_pack", "bike"):
            for n in range(10):
                touch(root / domain / "images" / label / f"frame_{n:04d}.jpg")
    touch(root / "amazon" / "images" / "bike" / "._frame_0000.jpg")  # macOS metadata: hidden, ignored
    table = rows(import_dataset("domainnet", root, tmp_path / "out", holdout=0.2))
    assert len(table) == 40
    for domain in ("amazon", "webcam"):
        for label in ("back_pack", "bike"):
            group = [r["split"] for r in table if r["domain"] == domain and r["label"] == label]
            assert sorted(group) == ["test"] * 2 + ["train"] * 8
    again = rows(import_dataset("domainnet", root, tmp_path / "again", holdout="0.2"))
    assert again == table


# ---------------------------------------------------------------- time-lapse


def photo(path: Path, exif_time: str | None = None, plain_time: str | None = None, offset: str = "") -> Path:
    """A tiny real JPEG, with EXIF DateTimeOriginal (+ OffsetTimeOriginal) and/or DateTime if given."""
    exif = Image.Exif()
    if plain_time:
        exif[ExifTags.Base.DateTime] = plain_time
    if exif_time:
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = exif_time
    if offset:
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.OffsetTimeOriginal] = offset
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (0, 128, 0)).save(path, exif=exif)
    return path


def test_timelapse_exif_filename_times_stage_boundaries_and_series_split(tmp_path: Path) -> None:
    root = tmp_path / "plants"
    for day in (1, 2, 3):  # EXIF times; names say nothing
        photo(root / "basil" / f"DSC_{day:04d}.jpg", exif_time=f"2024:05:0{day} 08:00:00",
              offset="+02:00" if day == 1 else "")
    photo(root / "basil" / "DSC_0009.jpg", plain_time="2024:05:04 08:00:00")  # DateTime fallback
    for day in (1, 2):  # no EXIF: times from the name
        photo(root / "mint" / f"IMG_202405{day:02d}_120000.jpg")
    for series in ("a", "b", "c", "d"):
        photo(root / f"pot_{series}" / "IMG_20240501_000000.jpg")
    photo(root / "mint" / "notes.jpg")  # neither EXIF nor a matching name
    stages = write(tmp_path / "stages.csv", "series,start,stage\nbasil,2024-05-02T00:00:00,sprout\n"
                   "basil,2024-05-01T00:00:00,seed\nmint,2024-05-02T06:00:00,leaf\nparsley,0,seed\n")
    options = {"pattern": "IMG_%Y%m%d_%H%M%S", "stages": stages}
    with pytest.raises(ManifestError) as error:
        import_dataset("timelapse", root, tmp_path / "out", **options)
    assert problems_of(error) == {(str(stages), 5), ("mint/notes.jpg", None)}  # stages.csv is outside ROOT
    assert "no readable capture time" in str(error.value) and "unknown series 'parsley'" in str(error.value)

    write(stages, stages.read_text().replace("parsley,0,seed\n", ""))
    table = rows(import_dataset("timelapse", root, tmp_path / "out", allow_missing=True, **options))
    assert len(table) == 10
    basil = [(r["timestamp"], r["stage"]) for r in table if r["series"] == "basil"]
    assert basil == [("2024-05-01T08:00:00+02:00", "seed"), ("2024-05-02T08:00:00", "sprout"),
                     ("2024-05-03T08:00:00", "sprout"), ("2024-05-04T08:00:00", "sprout")]
    mint = [(r["timestamp"], r["stage"]) for r in table if r["series"] == "mint"]
    assert mint == [("2024-05-01T12:00:00", ""), ("2024-05-02T12:00:00", "leaf")]
    split_of = {r["series"]: r["split"] for r in table}
    assert all(r["split"] == split_of[r["series"]] for r in table)  # no series on both sides
    assert sorted(split_of.values()) == ["test", "train", "train", "train", "train", "val"]  # 6 x 70/15/15
    assert split_of == assign_splits(split_of, (0.7, 0.15, 0.15), seed=0)


def test_timelapse_regex_series_group_and_per_file_stages(tmp_path: Path) -> None:
    root = tmp_path / "cams"
    for cam in ("north", "south"):
        for hour in (6, 18):
            photo(root / f"{cam}-2023-07-01T{hour:02d}.jpg")
    staged = "path,stage\nnorth-2023-07-01T06.jpg,dawn\nsouth-2023-07-01T18.jpg,dusk\n"
    stages = write(tmp_path / "stages.csv", staged + "west-2023-07-01T06.jpg,dawn\n")
    pattern = r"(?P<series>\w+)-(?P<year>\d{4})-(?P<month>\d\d)-(?P<day>\d\d)T(?P<hour>\d\d)"
    with pytest.raises(ManifestError) as error:
        import_dataset("timelapse", root, tmp_path / "out", pattern=pattern, stages=stages,
                       time_source="filename")
    assert problems_of(error) == {(str(stages), 4)}

    write(stages, staged)
    table = rows(import_dataset("timelapse", root, tmp_path / "out", pattern=pattern, stages=stages,
                                ratios="1,1,0", seed=3))
    assert [(r["series"], r["timestamp"], r["stage"]) for r in table] == [
        ("north", "2023-07-01T06:00:00", "dawn"), ("north", "2023-07-01T18:00:00", ""),
        ("south", "2023-07-01T06:00:00", ""), ("south", "2023-07-01T18:00:00", "dusk")]
    assert {r["split"] for r in table} == {"train", "val"}


def test_timelapse_notes_per_series_become_the_text_column(tmp_path: Path) -> None:
    root = tmp_path / "plates"
    for plate in ("p1", "p2"):
        for hour in (6, 18):
            photo(root / plate / f"IMG_20230701_{hour:02d}0000.jpg")
    notes = write(tmp_path / "notes.csv", "series,text\np1,incubated at 18 °C.\np9,incubated at 30 °C.\n")
    options = {"pattern": "IMG_%Y%m%d_%H%M%S", "notes": notes}
    with pytest.raises(ManifestError) as error:
        import_dataset("timelapse", root, tmp_path / "out", **options)
    assert problems_of(error) == {(str(notes), 3)}
    write(notes, "series,text\np1,incubated at 18 °C.\n")
    table = rows(import_dataset("timelapse", root, tmp_path / "out", **options))
    assert {(r["series"], r["text"]) for r in table} == {("p1", "incubated at 18 °C."), ("p2", "")}


def test_timelapse_rejects_bad_patterns(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsupported directive"):
        import_dataset("timelapse", tmp_path, tmp_path / "out", pattern="%Y%q")
    with pytest.raises(ConfigError, match=r"\['day'\]"):
        import_dataset("timelapse", tmp_path, tmp_path / "out", pattern=r"(?P<year>\d{4})(?P<month>\d\d)")
    with pytest.raises(ConfigError, match="ratios"):
        import_dataset("timelapse", tmp_path, tmp_path / "out", ratios="0.5,0.5")


def test_domainnet_captions_fill_text_and_report_images_without_one(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    root = domainnet_tree(tmp_path / "domainnet")
    write(tmp_path / "captions.csv", "path,text\nclipart/bee/clipart_001_000001.jpg,a bee drawn in ink\n")
    with caplog.at_level("WARNING"):
        table = rows(import_dataset("domainnet", root, tmp_path / "out", captions=tmp_path / "captions.csv"))
    texts = {row["path"].split("/")[-1]: row["text"] for row in table}
    assert texts["clipart_001_000001.jpg"] == "a bee drawn in ink" and texts["real_000_000001.jpg"] == ""
    assert "11 of 12 image(s) have no caption" in caplog.text
    write(tmp_path / "bad.csv", "path,text\nclipart/bee/nope.jpg,a bee\n")
    with pytest.raises(ManifestError, match=r"bad.csv line 2: caption of .clipart/bee/nope.jpg., which is not an "):
        import_dataset("domainnet", root, tmp_path / "out2", captions=tmp_path / "bad.csv")
