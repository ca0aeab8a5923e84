"""Atomic file writes (temporary file in the same directory, then rename) and run-owned output directories."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Sequence

from topodiff.errors import TopodiffInputError


def fsync_dir(directory: str | os.PathLike) -> None:
    """fsync a directory so a rename inside it survives a crash (no-op where directories can't be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def available_cpus() -> int:
    """CPUs this process may run on (affinity-aware; cgroup quotas are not read)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def _user_path_error(exc: OSError, path: Path) -> OSError:
    """The same kind of error, naming ``path`` (the user's file) instead of a temporary name."""
    name = os.path.basename(str(exc.filename or ""))
    if exc.errno is None or not (name.startswith(f".{path.name}.") and name.endswith(".tmp")):
        return exc
    return type(exc)(exc.errno, exc.strerror, str(path))


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], *, mode: str = "w") -> Path:
    """Call ``write(fh)`` on a temporary file beside ``path``, fsync, rename it into place, fsync the directory."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # name the user's path, not a temporary file
        err = _user_path_error(exc, path)
        if err is exc:
            raise
        raise err from None
    try:
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        err = _user_path_error(exc, path) if isinstance(exc, OSError) else exc
        if err is not exc:
            raise err from None
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write(path, lambda fh: json.dump(obj, fh, indent=2))


# --- output directories owned by one run -------------------------------------------------------

RUN_MARKER = ".topodiff-run.json"
_FINGERPRINT_DETAILS: dict[str, dict[str, Any]] = {}  # fingerprint -> what went into it (this process)


def _hash_file(path: Path, h: "hashlib._Hash") -> None:
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)


def _source_digest(path: Path) -> str:
    """sha256 of a file's bytes, or of a directory tree (relative names + contents; run markers skipped)."""
    h = hashlib.sha256()
    if path.is_file():
        h.update(b"file\0")
        _hash_file(path, h)
    elif path.is_dir():
        h.update(b"dir\0")
        for p in sorted(path.rglob("*")):
            if p.name == RUN_MARKER or not p.is_file():
                continue
            h.update(str(p.relative_to(path).as_posix()).encode() + b"\0")
            _hash_file(p, h)
            h.update(b"\0")
    else:
        h.update(b"missing\0")
    return h.hexdigest()


def fingerprint(*, sources: Sequence[str | os.PathLike] = (), options: Mapping[str, Any] | None = None) -> str:
    """sha256 hex of the sources' contents (files, or directory trees), the options (sorted JSON) and
    ``topodiff.__version__``. Paths themselves do not enter (a moved input keeps its fingerprint)."""
    from topodiff import __version__

    digests = {str(s): _source_digest(Path(s)) for s in sources}
    opts = json.loads(json.dumps(dict(options or {}), sort_keys=True, default=str))
    h = hashlib.sha256()
    h.update(json.dumps({"sources": sorted(digests.values()), "options": opts, "version": __version__},
                        sort_keys=True).encode())
    fp = h.hexdigest()
    _FINGERPRINT_DETAILS[fp] = {"sources": digests, "options": opts, "version": __version__}
    return fp


def _flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one dict of dotted keys."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _same_run_but_exempt(old: Mapping[str, Any], fp: str, exempt: Collection[str]) -> bool:
    """True when the marker ``old`` and the fingerprint ``fp`` differ only in the dotted option keys
    ``exempt`` (keys made run-control after the marker was written): same inputs and version."""
    new = _FINGERPRINT_DETAILS.get(fp)
    prev = old.get("detail")
    if not exempt or not new or not isinstance(prev, dict):
        return False
    po, no = _flatten(prev.get("options") or {}), _flatten(new["options"])
    kept = (set(po) | set(no)) - set(exempt)
    return (prev.get("version") == new["version"]
            and sorted((prev.get("sources") or {}).values()) == sorted(new["sources"].values())
            and all(po.get(k) == no.get(k) for k in kept))


def _describe_difference(old: Mapping[str, Any], fp: str) -> str:
    """Say what differs between the marker ``old`` and the fingerprint ``fp`` (computed in this process)."""
    new = _FINGERPRINT_DETAILS.get(fp)
    if not new or not isinstance(old.get("detail"), dict):
        return "its inputs, options or topodiff version differ"
    prev, parts = old["detail"], []
    if prev.get("version") != new["version"]:
        parts.append(f"topodiff version {prev.get('version')} -> {new['version']}")
    po, no = _flatten(prev.get("options") or {}), _flatten(new["options"])
    changed = sorted(k for k in set(po) | set(no) if po.get(k) != no.get(k))
    if changed:
        parts.append("options " + ", ".join(f"{k}: {po.get(k)!r} -> {no.get(k)!r}" for k in changed[:6]))
    if sorted((prev.get("sources") or {}).values()) != sorted(new["sources"].values()):
        parts.append("input contents changed (" + ", ".join(new["sources"]) + ")")
    return "; ".join(parts) or "its inputs, options or topodiff version differ"


def _read_marker(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((path / RUN_MARKER).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and "job" in data and "fingerprint" in data else None


def _check_writable_location(path: Path) -> None:
    """Refuse an output path under a regular file, a non-directory, or an unwritable place."""
    for parent in [path, *path.parents]:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                where = "is" if parent == path else f"is under {parent}, which is"
                raise TopodiffInputError(f"output directory {path} {where} not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise TopodiffInputError(f"output directory {path}: {parent} is not writable")
            return


def _refuse_to_clear(path: Path, fp: str) -> None:
    """Guard --overwrite against clearing a home, a working tree, a repository or the run's own inputs."""
    real = path.resolve()
    cwd = Path.cwd().resolve()
    if real == Path(real.anchor) or real == Path.home().resolve() or real == cwd or real in cwd.parents \
            or (real / ".git").exists():
        raise TopodiffInputError(f"--overwrite refuses to clear {path} (a root, home, working or repository "
                                 "directory); choose another output directory")
    for src in (_FINGERPRINT_DETAILS.get(fp) or {}).get("sources", {}):
        s = Path(src).resolve()
        if s == real or real in s.parents:
            raise TopodiffInputError(f"--overwrite would delete the input {src}, which lies in {path}; "
                                     "choose another output directory")


def _clear_dir(path: Path) -> None:
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _write_marker(path: Path, job: str, fp: str, *, exclusive: bool) -> None:
    import datetime as _dt

    marker = {"job": job, "fingerprint": fp,
              "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    if fp in _FINGERPRINT_DETAILS:
        marker["detail"] = _FINGERPRINT_DETAILS[fp]
    if not exclusive:
        atomic_write_json(path / RUN_MARKER, marker)
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{RUN_MARKER}.", suffix=".tmp", dir=path)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(marker, fh, indent=2)
        os.link(tmp, path / RUN_MARKER)  # fails if another run claimed the directory meanwhile
    except FileExistsError:
        raise TopodiffInputError(f"output directory {path} was claimed by another run just now; "
                                 "choose another output directory") from None
    finally:
        os.unlink(tmp)
    fsync_dir(path)


def claim_output_dir(path: str | os.PathLike, *, job: str, fingerprint: str, overwrite: bool = False,
                     resume: bool = False, exempt: Collection[str] = ()) -> Path:
    """Create/own ``path`` for one run; writes ``<path>/.topodiff-run.json`` ``{job, fingerprint, created}``.

    Empty or missing directory: claim it. Same job and fingerprint with ``resume=True``: continue. A
    non-empty directory owned by another run, job, input or option set (or without a marker): refuse
    with a :class:`TopodiffInputError` unless ``overwrite`` (which clears its contents). ``resume=True``
    with a different fingerprint: refuse, saying what differs, unless only the dotted option keys
    ``exempt`` differ (settings that stopped defining the run after it started); the marker then takes
    the new fingerprint. A path under a regular file or in an
    unwritable place is refused before anything is computed.
    """
    path = Path(path)
    _check_writable_location(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TopodiffInputError(f"cannot create output directory {path}: {exc.strerror}") from None
    contents = [p for p in path.iterdir() if p.name != RUN_MARKER and not p.name.startswith(f".{RUN_MARKER}.")]
    marker = _read_marker(path)
    if not contents:
        _write_marker(path, job, fingerprint, exclusive=marker is None)
        return path
    if marker is not None and marker["job"] == job and resume:
        if marker["fingerprint"] == fingerprint:
            return path
        if _same_run_but_exempt(marker, fingerprint, exempt):
            _write_marker(path, job, fingerprint, exclusive=False)
            return path
        if not overwrite:
            raise TopodiffInputError(
                f"cannot resume in {path}: the run there differs ({_describe_difference(marker, fingerprint)}); "
                "pass --overwrite to start afresh there or choose another output directory")
    if not overwrite:
        if marker is None:
            owner = "holds files not written by a topodiff run"
        elif marker["job"] != job:
            owner = f"holds the output of a `{marker['job']}` run"
        elif marker["fingerprint"] == fingerprint:
            owner = f"holds an earlier `{job}` run with the same inputs and options"
        else:
            owner = f"holds another `{job}` run ({_describe_difference(marker, fingerprint)})"
        raise TopodiffInputError(f"output directory {path} {owner}; pass --overwrite to clear it "
                                 "(its contents are deleted) or choose another output directory")
    _refuse_to_clear(path, fingerprint)
    _clear_dir(path)
    _write_marker(path, job, fingerprint, exclusive=False)
    return path


def check_output_file(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """An output *file* of one run: refused when it exists (unless ``overwrite``), is a directory, lies
    under a regular file or in an unwritable place. Checked up front, before any computing."""
    path = Path(path)
    if path.is_dir():
        raise TopodiffInputError(f"output file {path} is a directory")
    _check_writable_location(path.parent)
    if path.exists() and not overwrite:
        raise TopodiffInputError(f"output file {path} exists; pass --overwrite to replace it or choose another name")
    return path
