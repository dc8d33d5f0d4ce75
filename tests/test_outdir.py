"""Output paths (gen.outdir): written only when new, empty or stamped; only accelgen's files replaced;
every refusal one line naming the path and why."""

import os
from pathlib import Path

import pytest

from gen import outdir
from gen.outdir import STAMP, OutputError

SOURCE = Path(outdir.__file__).resolve().parent


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A working folder holding a user's file and folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "notes.txt").write_text("mine too")
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "my.toml").write_text("[gemm]\n")
    os.symlink("user", tmp_path / "link")
    return tmp_path


@pytest.mark.parametrize("given, message", [
    ("", '"": output folder is an empty path; give a name'),
    (" out", "' out': output folder begins or ends with white space; give the name without it"),
    ("a\nb", "'a\\nb': output folder contains a control character (such as a newline or a tab); "
              "give a name without it"),
    (".", ".: is the current folder; the output folder must be a folder of its own (for example "
          "rtl_out)"),
    ("..", "..: holds the current folder; the output folder must be a folder of its own"),
    ("/", "/: holds the current folder; the output folder must be a folder of its own"),
    ("/proc/x", "/proc/x: is under /proc, a system folder; choose a folder of your own for the "
                "output folder"),
    ("/sys/x", "/sys/x: is under /sys, a system folder; choose a folder of your own for the output "
               "folder"),
    ("/dev/null", "/dev/null: is under /dev, a system folder; choose a folder of your own for the "
                  "output folder"),
    ("notes.txt", "notes.txt: is a file, not a folder; the output folder must be a folder (new, "
                  "empty, or written by accelgen)"),
    ("link", "link: is a symbolic link; accelgen does not write through links (give the path it "
             "points to, or another name)"),
    ("user", "user: holds files accelgen did not write (notes.txt) and no .accelgen-stamp; choose a "
             "new or empty folder"),
    ("cfg", "cfg: holds the configuration file cfg/my.toml; the output folder must be a folder of "
            "its own"),
    ("cfg/my.toml", "cfg/my.toml: is the configuration file; the output folder must be another "
                    "path"),
    ("notes.txt/sub", "notes.txt/sub: cannot be created: a part of the path is a file, not a "
                      "folder"),
    (str(SOURCE / "x"), f"{SOURCE / 'x'}: is inside accelgen's own source ({SOURCE}); choose "
                        f"another place"),
    (str(SOURCE.parent), f"{SOURCE.parent}: holds accelgen's own source ({SOURCE}); choose another "
                         f"folder"),
])
def test_refused_folders(sandbox, given, message):
    before = _snapshot(sandbox)
    with pytest.raises(OutputError) as info:
        outdir.check_folder(given, keep=["cfg/my.toml"])
    assert str(info.value) == message
    with pytest.raises(OutputError):
        outdir.write_folder({"a.v": "x"}, given, keep=["cfg/my.toml"])
    assert _snapshot(sandbox) == before


def _snapshot(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = (p.read_bytes() if p.is_file() and not p.is_symlink()
                                             else os.readlink(p) if p.is_symlink() else "dir")
    return out


def test_new_folder_gets_files_and_stamp(sandbox):
    out = outdir.write_folder({"a.v": "A", "b.json": "{}"}, "deep/out")
    assert out == sandbox / "deep" / "out"
    assert sorted(p.name for p in out.iterdir()) == [STAMP, "a.v", "b.json"]
    assert outdir.stamped_names(out) == ["a.v", "b.json"]
    assert not [p for p in (sandbox / "deep").iterdir() if p.name != "out"]


def test_rewrite_replaces_only_listed_files(sandbox):
    out = outdir.write_folder({"a.v": "A", "b.json": "{}"}, "out")
    (out / "notes.txt").write_text("user's")
    outdir.write_folder({"a.v": "A2", "c.v": "C"}, "out")
    assert (out / "a.v").read_text() == "A2"
    assert not (out / "b.json").exists()
    assert (out / "notes.txt").read_text() == "user's"
    assert outdir.stamped_names(out) == ["a.v", "c.v"]


def test_rewrite_refuses_a_user_file_of_the_same_name(sandbox):
    out = outdir.write_folder({"a.v": "A"}, "out")
    (out / "c.v").write_text("user's c.v")
    with pytest.raises(OutputError) as info:
        outdir.write_folder({"a.v": "A2", "c.v": "C"}, "out")
    assert str(info.value) == ("out: holds c.v, which accelgen did not write (its .accelgen-stamp "
                               "does not list it); move it away or choose another folder")
    assert (out / "a.v").read_text() == "A" and (out / "c.v").read_text() == "user's c.v"


def test_empty_folder_is_written(sandbox):
    (sandbox / "empty").mkdir()
    outdir.write_folder({"a.v": "A"}, "empty")
    assert outdir.stamped_names(sandbox / "empty") == ["a.v"]


@pytest.mark.parametrize("stamp, message", [
    ("hello\n", "is not accelgen's stamp file (it lacks the '# accelgen' first line); remove it or "
                "choose another folder"),
    ("# accelgen\n../notes.txt\n", "lists '../notes.txt', which is not a path inside the folder"),
    ("# accelgen\n/etc/passwd\n", "lists '/etc/passwd', which is not a path inside the folder"),
])
def test_a_stamp_that_is_not_accelgens_is_refused(sandbox, stamp, message):
    (sandbox / "out").mkdir()
    (sandbox / "out" / STAMP).write_text(stamp)
    with pytest.raises(OutputError) as info:
        outdir.write_folder({"a.v": "A"}, "out")
    assert str(info.value) == f"{Path('out') / STAMP}: {message}"
    assert (sandbox / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("given, message", [
    ("", '"": output file is an empty path; give a name'),
    ("notes.txt", "notes.txt: exists and accelgen did not write it (no .accelgen-stamp beside it "
                  "lists it); remove it or choose another name"),
    ("user", "user: is a folder, not a file; the output file must be a file name"),
    ("link", "link: is a symbolic link; accelgen does not write through links (give the path it "
             "points to, or another name)"),
    ("/dev/null", "/dev/null: is under /dev, a system folder; choose a file of your own for the "
                  "output file"),
    (STAMP, ".accelgen-stamp: is the name of accelgen's stamp file; choose another name"),
    ("cfg/my.toml", "cfg/my.toml: exists and accelgen did not write it (no .accelgen-stamp beside "
                    "it lists it); remove it or choose another name"),
    ("notes.txt/r.json", "notes.txt/r.json: cannot be created: a part of the path is a file, not a "
                         "folder"),
])
def test_refused_files(sandbox, given, message):
    before = _snapshot(sandbox)
    with pytest.raises(OutputError) as info:
        outdir.check_file(given)
    assert str(info.value) == message
    assert _snapshot(sandbox) == before


def test_file_written_then_rewritten_beside_user_files(sandbox):
    outdir.write_file("res/r.json", "1")
    (sandbox / "res" / "notes.txt").write_text("user's")
    outdir.write_file("res/r.json", "2")
    assert (sandbox / "res" / "r.json").read_text() == "2"
    assert outdir.stamped_names(sandbox / "res") == ["r.json"]
    assert (sandbox / "res" / "notes.txt").read_text() == "user's"


def test_build_root(sandbox):
    with pytest.raises(OutputError) as info:
        outdir.check_build_root("user")
    assert str(info.value) == ("user: holds files accelgen did not write (notes.txt) and no "
                               ".accelgen-stamp; choose a new or empty folder for the build folder "
                               "(ACCELGEN_SIM_BUILD)")
    with pytest.raises(OutputError) as info:
        outdir.check_build_root("notes.txt")
    assert str(info.value) == ("notes.txt: is a file, not a folder; the build folder "
                               "(ACCELGEN_SIM_BUILD) must be a folder (new, empty, or written by "
                               "accelgen)")
    path = outdir.check_build_root("b")
    outdir.mark_build_root(path)
    (path / "x").mkdir()
    assert outdir.check_build_root("b") == path


def test_build_and_output_folders_are_not_mixed(sandbox):
    outdir.mark_build_root(sandbox / "b")
    outdir.write_folder({"a.v": "A"}, "o")
    with pytest.raises(OutputError) as info:
        outdir.check_folder("b")
    assert str(info.value) == ("b: is an accelgen build folder (its .accelgen-stamp says so), not "
                               "an output folder; choose another folder")
    with pytest.raises(OutputError) as info:
        outdir.check_file("b/r.json")
    assert str(info.value) == ("b/r.json: is inside an accelgen build folder (its .accelgen-stamp "
                               "says so); choose another place for the output file")
    with pytest.raises(OutputError) as info:
        outdir.check_build_root("o")
    assert str(info.value) == ("o: is an output folder of accelgen (its .accelgen-stamp lists the "
                               "files written there), not a build folder; choose another folder "
                               "for the build folder (ACCELGEN_SIM_BUILD)")


def test_a_folder_where_a_listed_file_was_is_refused(sandbox):
    out = outdir.write_folder({"a.v": "A"}, "out")
    (out / "a.v").unlink()
    (out / "a.v").mkdir()
    with pytest.raises(OutputError) as info:
        outdir.write_folder({"a.v": "A2"}, "out")
    assert str(info.value) == ("out: holds a folder a.v where accelgen wrote a file; move it away "
                               "or choose another folder")
