"""Output paths: accelgen writes only where it may, and replaces only what it wrote.

Every folder accelgen writes into carries a stamp file, :data:`STAMP` (``.accelgen-stamp``), that lists the
files accelgen wrote there, one relative path a line. A folder is written only when it does not exist, is
empty, or carries a stamp; on a rewrite accelgen replaces and removes only the files its stamp lists, and
leaves every other file alone. A single output file (``--json FILE``) is written only where no file is, or
over a file the stamp of its folder lists.

Paths are checked before any work starts (:func:`check_folder`, :func:`check_file`,
:func:`check_build_root`). A path accelgen must not write raises :class:`OutputError`, whose message is
one line naming the path as the user gave it and why: an empty path, a file or device where a folder is
wanted (or the reverse), a symbolic link, a path under ``/proc``, ``/sys`` or ``/dev``, the current folder
or a folder holding it, a folder holding accelgen's own source or a configuration file, a folder holding
files accelgen did not write, a place that cannot be created or written.

Writing (:func:`write_folder`, :func:`write_file`) checks again, then writes each file to a temporary name
beside its destination and renames it into place, so a file is either old or new, never half written. A new
folder is written whole under a temporary name and renamed into place.
"""

import os
import shutil
import stat
import tempfile
from pathlib import Path, PurePosixPath

__all__ = ["STAMP", "OutputError", "check_folder", "check_file", "check_folder_for_files",
           "check_build_root", "mark_build_root", "write_folder", "write_file", "record",
           "stamped_names"]

STAMP = ".accelgen-stamp"
"""Name of the stamp file of a folder accelgen wrote into."""

_HEADER = ("# accelgen wrote the files below into this folder; it replaces or removes only these.\n")
_BUILD_HEADER = ("# accelgen build folder: simulator builds and emitted Verilog in folders named by "
                 "a hash; accelgen removes nothing here.\n")
_SYSTEM = (Path("/proc"), Path("/sys"), Path("/dev"))
_SOURCE = Path(__file__).resolve().parent


class OutputError(ValueError):
    """An output path accelgen must not write.

    Parameters
    ----------
    path : str
        The path as the user gave it.
    why : str
        Why it is refused, and what to do instead.
    """

    def __init__(self, path, why):
        self.path = str(path)
        self.why = why
        super().__init__(f"{_shown(path)}: {why}")


def _shown(path):
    text = str(path)
    if text == "":
        return '""'
    return text if text.isprintable() and text.strip() == text else repr(text)


def _lstat(path, given):
    """``os.lstat`` of ``path``, or ``None`` when nothing is there."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise OutputError(given, "cannot be created: a part of the path is a file, not a "
                                 "folder") from None
    except (OSError, ValueError) as exc:
        raise OutputError(given, f"cannot be examined ({_reason(exc)})") from None


def _reason(exc):
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)


def _is_within(path, folder):
    return path == folder or folder in path.parents


def _absolute(given, what):
    """The absolute, normalized path of ``given`` (symbolic links of its folders resolved), after the
    checks that need no file system."""
    text = os.fspath(given) if isinstance(given, os.PathLike) else given
    if not isinstance(text, str) or text == "":
        raise OutputError("" if text is None else text, f"{what} is an empty path; give a name")
    if "\0" in text:
        raise OutputError(text, f"{what} contains a NUL character")
    if text.strip() != text:
        raise OutputError(text, f"{what} begins or ends with white space; give the name without it")
    if not text.isprintable():
        raise OutputError(text, f"{what} contains a control character (such as a newline or a tab); "
                                f"give a name without it")
    try:
        path = Path(text).absolute()
        # Resolve the folders above, not the last part (a link there is refused, not followed).
        parent = path.parent.resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise OutputError(text, f"cannot be examined ({_reason(exc)})") from None
    name = path.name
    if name in ("", ".", ".."):
        return parent if name != ".." else parent.parent
    return parent / name


def _refuse_special_places(given, path, what, keep):
    for system in _SYSTEM:
        if _is_within(path, system) or _is_within(path, system.resolve()):
            raise OutputError(given, f"is under {system}, a system folder; choose a folder of your "
                                     f"own for the {what}")
    cwd = Path.cwd().resolve()
    if path == cwd:
        raise OutputError(given, f"is the current folder; the {what} must be a folder of its own "
                                 f"(for example rtl_out)")
    if path in cwd.parents:
        raise OutputError(given, f"holds the current folder; the {what} must be a folder of its own")
    _refuse_source(given, path)
    for keep_path in keep:
        if keep_path is None:
            continue
        kept = Path(keep_path).absolute()
        try:
            kept = kept.parent.resolve() / kept.name
        except (OSError, RuntimeError):
            continue
        if path == kept:
            raise OutputError(given, f"is the configuration file; the {what} must be another path")
        if path in kept.parents:
            raise OutputError(given, f"holds the configuration file {keep_path}; the {what} must be "
                                     f"a folder of its own")


def _refuse_source(given, path):
    if _is_within(path, _SOURCE):
        raise OutputError(given, f"is inside accelgen's own source ({_SOURCE}); choose another "
                                 f"place")
    if path in _SOURCE.parents:
        raise OutputError(given, f"holds accelgen's own source ({_SOURCE}); choose another folder")


def _kind(st):
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    if stat.S_ISDIR(st.st_mode):
        return "a folder"
    if stat.S_ISREG(st.st_mode):
        return "a file"
    return "a device or special file"


def _refuse_link(given, st):
    if stat.S_ISLNK(st.st_mode):
        raise OutputError(given, "is a symbolic link; accelgen does not write through links (give "
                                 "the path it points to, or another name)")


def _check_creatable(given, path):
    """The nearest existing folder above ``path`` is a writable folder."""
    for above in path.parents:
        st = _lstat(above, given)
        if st is None:
            continue
        if not stat.S_ISDIR(os.stat(above).st_mode):
            raise OutputError(given, f"cannot be created: {above} is {_kind(st)}, not a folder")
        if not os.access(above, os.W_OK | os.X_OK):
            raise OutputError(given, f"cannot be created: {above} is not writable")
        return
    raise OutputError(given, "cannot be created: no folder above it exists")  # pragma: no cover


def stamped_names(folder, given=None):
    """The names the stamp of ``folder`` lists (``None`` when it has no stamp).

    Raises :class:`OutputError`, naming the stamp in ``given`` (the folder as the user gave it), when
    the stamp is not a readable file of accelgen's."""
    stamp = Path(folder) / STAMP
    if given is not None:
        shown = os.path.join(given, STAMP)
        try:
            return stamped_names(folder)
        except OutputError as exc:
            raise OutputError(shown, exc.why) from None
    st = _lstat(stamp, stamp)
    if st is None:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(stamp, f"is {_kind(st)}, not accelgen's stamp file; remove it or choose "
                                 f"another folder")
    try:
        text = stamp.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OutputError(stamp, f"cannot be read ({_reason(exc)})") from None
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# accelgen"):
        raise OutputError(stamp, "is not accelgen's stamp file (it lacks the '# accelgen' first "
                                 "line); remove it or choose another folder")
    names = []
    for line in lines[1:]:
        if not line or line.startswith("#"):
            continue
        if not _safe_name(line):
            raise OutputError(stamp, f"lists {line!r}, which is not a path inside the folder")
        names.append(line)
    return names


def _safe_name(name):
    p = PurePosixPath(name)
    return (name == str(p) and not p.is_absolute() and ".." not in p.parts and p.parts
            and p.parts[0] not in (".", STAMP) and "\0" not in name)


def _entries(path, given):
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        raise OutputError(given, f"cannot be read ({_reason(exc)})") from None


def check_folder(given, *, what="output folder", keep=(), names=None):
    """Check that accelgen may write the folder ``given``; its absolute path.

    ``keep``: configuration files, which the folder must neither be nor hold. ``names``: the files
    that will be written (relative paths), when known: none may be a file accelgen did not write.
    Raises :class:`OutputError`; touches nothing.
    """
    path = _absolute(given, what)
    _refuse_special_places(given, path, what, keep)
    st = _lstat(path, given)
    if st is None:
        _check_creatable(given, path)
        return path
    _refuse_link(given, st)
    if not stat.S_ISDIR(st.st_mode):
        raise OutputError(given, f"is {_kind(st)}, not a folder; the {what} must be a folder "
                                 f"(new, empty, or written by accelgen)")
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(given, "is not writable")
    listed = stamped_names(path, given)
    if listed is not None and _is_build_stamp(path):
        raise OutputError(given, f"is an accelgen build folder (its {STAMP} says so), not an "
                                 f"output folder; choose another folder")
    entries = _entries(path, given)
    if listed is None:
        if entries:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise OutputError(given, f"holds files accelgen did not write ({shown}) and no {STAMP}; "
                                     f"choose a new or empty folder")
        return path
    for name in names or ():
        st = _lstat(path / name, given)
        if st is None:
            continue
        if name not in listed:
            raise OutputError(given, f"holds {name}, which accelgen did not write (its {STAMP} "
                                     f"does not list it); move it away or choose another folder")
        if stat.S_ISDIR(st.st_mode):
            raise OutputError(given, f"holds a folder {name} where accelgen wrote a file; move it "
                                     f"away or choose another folder")
    return path


def _is_build_stamp(folder):
    try:
        with open(Path(folder) / STAMP, encoding="utf-8") as f:
            return f.readline().startswith("# accelgen build folder")
    except (OSError, UnicodeDecodeError):
        return False


def check_file(given, *, what="output file", keep=()):
    """Check that accelgen may write the file ``given``; its absolute path.

    The file must be absent or listed in the stamp of its folder. Raises :class:`OutputError`;
    touches nothing."""
    path = _absolute(given, what)
    _refuse_special_places_file(given, path, what, keep)
    if _is_build_stamp(path.parent):
        raise OutputError(given, f"is inside an accelgen build folder (its {STAMP} says so); choose "
                                 f"another place for the {what}")
    st = _lstat(path, given)
    if st is None:
        _check_creatable(given, path)
        return path
    _refuse_link(given, st)
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(given, f"is {_kind(st)}, not a file; the {what} must be a file name")
    listed = stamped_names(path.parent, os.path.dirname(str(given)) or ".") or ()
    relative = path.name
    if relative not in listed:
        raise OutputError(given, f"exists and accelgen did not write it (no {STAMP} beside it lists "
                                 f"it); remove it or choose another name")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise OutputError(given, f"cannot be replaced: {path.parent} is not writable")
    return path


def check_folder_for_files(given, names, *, what="output folder", keep=()):
    """Check that accelgen may write the files ``names`` into the folder ``given``, which may hold
    other files (they are left alone); its absolute path. Each file must be absent or listed in the
    folder's stamp. Raises :class:`OutputError`; touches nothing."""
    path = _absolute(given, what)
    _refuse_special_places_file(given, path, what, keep)
    st = _lstat(path, given)
    if st is None:
        _check_creatable(given, path)
        return path
    if not stat.S_ISDIR(st.st_mode):
        raise OutputError(given, f"is {_kind(st)}, not a folder; the {what} must be a folder")
    for name in names:
        check_file(path / name, what=f"file {name} of the {what}", keep=keep)
    return path


def _refuse_special_places_file(given, path, what, keep):
    for system in _SYSTEM:
        if _is_within(path, system) or _is_within(path, system.resolve()):
            raise OutputError(given, f"is under {system}, a system folder; choose a file of your "
                                     f"own for the {what}")
    if path.name == STAMP:
        raise OutputError(given, f"is the name of accelgen's stamp file; choose another name")
    _refuse_source(given, path)
    for keep_path in keep:
        if keep_path is not None and path == _absolute(keep_path, what):
            raise OutputError(given, f"is the configuration file; the {what} must be another path")


def check_build_root(given, *, what="build folder (ACCELGEN_SIM_BUILD)"):
    """Check the root of simulator builds; its absolute path.

    It may be absent, empty, stamped as a build folder, or a build folder written by an earlier
    version of accelgen (sub-folders holding ``.accelgen_built`` or ``.complete`` markers)."""
    path = _absolute(given, what)
    for system in _SYSTEM:
        if _is_within(path, system) or _is_within(path, system.resolve()):
            raise OutputError(given, f"is under {system}, a system folder; choose a folder of your "
                                     f"own for the {what}")
    _refuse_source(given, path)
    cwd = Path.cwd().resolve()
    if path == cwd or path in cwd.parents:
        raise OutputError(given, f"{'is' if path == cwd else 'holds'} the current folder; the "
                                 f"{what} must be a folder of its own (for example sim_build)")
    st = _lstat(path, given)
    if st is None:
        _check_creatable(given, path)
        return path
    if not stat.S_ISDIR(st.st_mode):
        raise OutputError(given, f"is {_kind(st)}, not a folder; the {what} must be a folder "
                                 f"(new, empty, or written by accelgen)")
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(given, "is not writable")
    stamp = path / STAMP
    st = _lstat(stamp, stamp)
    if st is not None:
        if not stat.S_ISREG(st.st_mode):
            raise OutputError(os.path.join(given, STAMP), f"is {_kind(st)}, not accelgen's stamp "
                                                           f"file")
        if not _is_build_stamp(path):
            raise OutputError(given, f"is an output folder of accelgen (its {STAMP} lists the files "
                                     f"written there), not a build folder; choose another folder "
                                     f"for the {what}")
        return path
    entries = _entries(path, given)
    if not entries or _looks_like_builds(path, entries):
        return path
    shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    raise OutputError(given, f"holds files accelgen did not write ({shown}) and no {STAMP}; choose a "
                             f"new or empty folder for the {what}")


def _looks_like_builds(path, entries):
    for name in entries:
        sub = path / name
        if (sub / ".accelgen_built").is_file():
            return True
        if name == "rtl" and sub.is_dir() and any((d / ".complete").is_file() for d in sub.iterdir()):
            return True
    return False


def mark_build_root(path):
    """Create the build root ``path`` (checked by :func:`check_build_root`) and stamp it."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    stamp = path / STAMP
    if not stamp.exists():
        _write_replacing(stamp, _BUILD_HEADER.encode())


def _stamp_text(names):
    return _HEADER + "".join(f"{name}\n" for name in sorted(set(names)))


def _write_replacing(target, data):
    """Write ``data`` (bytes) to ``target`` through a temporary file beside it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _data(value):
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def write_folder(files, given, *, what="output folder", keep=()):
    """Write ``files`` (relative path -> text or bytes) into the folder ``given``; its path.

    The folder is checked as by :func:`check_folder`. A new folder is written whole and renamed into
    place. In a stamped folder the listed files that ``files`` no longer has are removed; nothing
    else is touched. The stamp lists exactly ``files`` afterwards.
    """
    names = sorted(files)
    for name in names:
        if not _safe_name(name):
            raise ValueError(f"{name!r} is not a relative path inside the folder")
    path = check_folder(given, what=what, keep=keep, names=names)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            tmp.chmod(0o777 & ~_umask())
            for name in names:
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                (tmp / name).write_bytes(_data(files[name]))
            (tmp / STAMP).write_text(_stamp_text(names), encoding="utf-8")
            tmp.rename(path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path
    old = stamped_names(path) or []
    # The stamp first lists old and new names, so that an interruption leaves no unlisted file.
    _write_replacing(path / STAMP, _stamp_text([*old, *names]).encode())
    for name in names:
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_replacing(target, _data(files[name]))
    for name in sorted(set(old) - set(names)):
        _remove_listed(path, name)
    _write_replacing(path / STAMP, _stamp_text(names).encode())
    return path


def _remove_listed(folder, name):
    """Remove the listed file ``name`` of ``folder`` (not a folder), then its emptied parents."""
    target = folder / name
    st = _lstat(target, target)
    if st is None or stat.S_ISDIR(st.st_mode):
        return
    target.unlink()
    parent = target.parent
    while parent != folder:
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent


def record(folder, names):
    """Add ``names`` (files accelgen has just written into ``folder``) to its stamp."""
    folder = Path(folder)
    old = stamped_names(folder) or []
    _write_replacing(folder / STAMP, _stamp_text([*old, *names]).encode())


def write_file(given, data, *, what="output file", keep=()):
    """Write ``data`` (text or bytes) to the file ``given``, checked as by :func:`check_file`, and list
    it in the stamp of its folder; its path."""
    path = check_file(given, what=what, keep=keep)
    path.parent.mkdir(parents=True, exist_ok=True)
    record(path.parent, [path.name])
    _write_replacing(path, _data(data))
    return path
