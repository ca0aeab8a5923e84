"""Every cheap command in README.md and docs/*.md runs as written (issue #18 item 5).

The rule that decides what runs (anything else is left out with its reason, which
:func:`test_the_rule_finds_commands_and_lists_what_it_leaves_out` checks):

* only ```` ```bash ```` blocks hold commands (untagged blocks are usage synopses, e.g. ``NAME|FILE``);
  ``\\`` continuations are joined, ``# comments`` dropped, ``a ; b`` split into two commands;
* the command is ``topodiff …`` or ``.venv/bin/topodiff …`` without environment prefixes or ``nice``
  (those mark long measurement jobs) — ``make``, ``python``, ``sbatch``, ``cp`` are not run here;
* its sub-command is in :data:`CHEAP` (seconds on one core), or it asks for ``--help`` /
  ``train --create-config``;
* every input it names exists (``model.json``, ``some_dir/`` are placeholders for the reader's files);
  inputs under ``../shared/data`` need the shared data (absent on user clones).

Commands run in-process through ``topodiff.cli.main`` in a scratch directory that links the repo's
``tests/``, ``configs/`` and ``src/`` and ``../shared`` (outputs never land in the repo); ``> FILE``
redirects stdout. A command passes when it exits 0, its ``--json`` output is one JSON object, and
every ``"key": value`` claim in its trailing comment (e.g. ``# "z2": [1, 1, 1, 1]``) holds.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
CHEAP = {"invariants", "weyl", "models", "bands", "screen", "checkpoints", "field-sweep", "phase-diagram",
         "validate-known", "slurm", "hall", "bott", "hofstadter", "surface"}
LINKS = ("tests", "configs", "src")
OUTPUT_OPTIONS = ("--out", "--png", "-o", ">")
PATH_FIRST = ("screen", "evaluate", "report", "predict")  # their first argument is always a path
INPUT_SUFFIXES = (".json", ".dat", ".csv", ".gz", ".cif", ".extxyz", ".xyz", ".txt", ".yaml", ".vasp", ".ckpt")
CLAIM = re.compile(r'"(\w+)":\s*(-?\d+(?:\.\d+)?|null|true|false|\[[^\]]*\])')


def _blocks(path: Path) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", path.read_text(), re.S | re.M)


def _lines(block: str) -> list[str]:
    return [ln.strip() for ln in block.replace("\\\n", " ").splitlines() if ln.strip()]


def _commands(line: str) -> list[tuple[str, str]]:
    """``(command, comment)`` pairs of one line (``a ; b`` split; the comment belongs to the last)."""
    code, _, comment = line.partition(" #") if not line.startswith("#") else ("", "", line)
    parts = [p.strip() for p in code.split(" ; ") if p.strip()]
    return [(p, comment if i == len(parts) - 1 else "") for i, p in enumerate(parts)]


def _inputs(argv: list[str]) -> list[str]:
    """Arguments that name files the command reads (not the values of output options)."""
    out = []
    for i, tok in enumerate(argv[1:], start=1):
        if argv[i - 1] in OUTPUT_OPTIONS or tok.startswith("-") or "=" in tok or " " in tok:
            continue
        if "/" in tok or tok.lower().endswith(INPUT_SUFFIXES) or (i == 2 and argv[1] in PATH_FIRST):
            out.append(tok)
    return out


def _skip_reason(argv: list[str], workdir_has) -> str | None:
    if not argv or Path(argv[0]).name != "topodiff" or argv[0] not in ("topodiff", ".venv/bin/topodiff"):
        return f"not a topodiff command ({argv[0] if argv else 'empty'}): not run here"
    args = argv[1:]
    if "--help" in args or args[:2] == ["train", "--create-config"]:
        return None
    if not args or args[0] not in CHEAP:
        return f"`topodiff {args[0] if args else ''}` is not in the cheap list (a long job)"
    for name in _inputs(argv):
        if name.startswith("../shared/") and not workdir_has(name):
            return f"needs the shared data ({name})"
        if not workdir_has(name):
            return f"input {name} is not in the repo (a placeholder, or the output of a command not run here)"
    return None


def collect() -> list:
    """One pytest param per distinct command line; the ones left out carry their reason as a mark."""
    seen, params = set(), []
    scratch_has = lambda name: (REPO / name).exists()  # noqa: E731 — same layout as the scratch dir
    for doc in DOCS:
        for block in _blocks(doc):
            for line in _lines(block):
                for cmd, comment in _commands(line):
                    try:
                        argv = shlex.split(cmd)
                    except ValueError:
                        continue
                    key = " ".join(["topodiff" if a == ".venv/bin/topodiff" else a for a in argv])
                    if key in seen:
                        continue
                    seen.add(key)
                    where = f"{doc.relative_to(REPO)}: {key}"
                    reason = _skip_reason(argv, scratch_has)
                    marks = [pytest.mark.skip(reason=reason)] if reason else []
                    params.append(pytest.param(argv, comment, id=where[:120], marks=marks))
    return params


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A directory laid out like the repo's root (links), with ``../shared`` beside it."""
    work = tmp_path / "repo"
    work.mkdir()
    for name in LINKS:
        (work / name).symlink_to(REPO / name)
    shared = REPO.parent / "shared"
    if shared.exists():
        (tmp_path / "shared").symlink_to(shared)
    monkeypatch.chdir(work)
    return work


def _run(argv: list[str]) -> tuple[int, str]:
    from topodiff.cli import main

    redirect = argv.index(">") if ">" in argv else None
    args = argv[1:redirect] if redirect else argv[1:]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(args)
    if redirect:
        Path(argv[redirect + 1]).write_text(buf.getvalue())
    return code, buf.getvalue()


@pytest.mark.parametrize("argv, comment", [p for p in collect() if not p.marks])
def test_documented_command_runs_as_written(argv, comment, scratch):
    code, out = _run(argv)
    assert code == 0, f"exit code {code}: {' '.join(argv)}"
    if "--json" in argv and ">" not in argv:
        result = json.loads(out)
        assert isinstance(result, dict)
        for key, value in CLAIM.findall(comment):
            if key in result:  # a claim about a nested key is not checked
                assert result[key] == json.loads(value), f"docs say {key}: {value}, output {result[key]}"


def test_the_rule_finds_commands_and_lists_what_it_leaves_out():
    params = collect()
    run = [p for p in params if not p.marks]
    left_out = [p for p in params if p.marks]
    assert len(run) >= 10 and left_out  # the docs do hold cheap commands, and long jobs are listed, not run
    assert any(p.values[0][1] == "invariants" for p in run)
    assert all(p.marks[0].kwargs["reason"] for p in left_out)
