"""Command line: ``python -m pdc_utils run|train --profile NAME``, ``profiles``,
``student-copies``, ``grade``, ``book``, ``study``."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from pdc_utils import book as book_module
from pdc_utils import config, exercises, locking, run
from pdc_utils.study import cli as study_cli


def _add_run_options(command: argparse.ArgumentParser, run_name_help: str) -> None:
    """The options ``run`` and ``train`` share: profile, run name, overrides, progress."""
    command.add_argument("--profile", default="quick", choices=list(config.PROFILES),
                         help="parameter profile (default: quick)")
    command.add_argument("--run-name", default=None, help=run_name_help)
    command.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                         help="override one profile parameter, e.g. -p epochs=5 (repeatable)")
    command.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pdc_utils",
        description="Run the distance-correlation / diverge-training notebook series.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    go = commands.add_parser("run", help="execute the notebooks in order with papermill")
    _add_run_options(go, "folder under runs/ and figures/ (default: the profile's name)")
    go.add_argument("--notebooks", default=None,
                    help="comma-separated notebook numbers to run, e.g. 02,03 (default: all)")
    train = commands.add_parser(
        "train", help="train (or reuse) every network of a run, without the notebooks; "
        "with -p strategy=multi_worker, run it on every worker (TF_CONFIG)")
    _add_run_options(train, "folder under runs/ (default: the profile's name)")
    commands.add_parser("profiles", help="list the profiles and their parameters")
    copies = commands.add_parser(
        "student-copies", help="write the notebooks without their solution cells and lecturer "
        "notes, for students")
    copies.add_argument("--out", required=True, help="folder for the student notebooks "
                        "(not notebooks/ itself)")
    copies.add_argument("--force", action="store_true",
                        help="replace student notebooks already in --out")
    grade = commands.add_parser(
        "grade", help="count the exercise verdicts (correct, not yet, ...) saved in executed "
        "student notebooks")
    grade.add_argument("dir", help="folder of executed notebooks (*.ipynb with their outputs)")
    book = commands.add_parser(
        "book", help="the course as a website: a run's executed notebooks with the README's "
        "results, glossary and reading list and docs/, in BUILD_DIR/html")
    book.add_argument("--run", default=None, help=f"the run to show (default: "
                      f"{book_module.DEFAULT_RUN}, which is run first if it is missing)")
    book.add_argument("--edition", default="lecturer",
                      help=f"one of {', '.join(book_module.EDITIONS)} (default: lecturer)")
    book.add_argument("--build-dir", default=None,
                      help="where the sources, doctrees and html/ go (default: book/_build)")
    study_cli.add_parser(commands)
    return parser


def _book(args: argparse.Namespace) -> int:
    """``book``: build the website; the default run is run first if it has not been."""
    name = args.run if args.run is not None else book_module.DEFAULT_RUN
    try:
        book_module.check_edition(args.edition)
        if name == book_module.DEFAULT_RUN and book_module.missing_notebooks(name):
            print(f"run {name!r} has not executed every notebook yet: running it first "
                  f"(python -m pdc_utils run --profile {name})", flush=True)
            run.run_series(name)
        index = book_module.build(name, args.edition, args.build_dir)
    except (ValueError, FileNotFoundError, run.RunError, locking.RunInUse,
            book_module.BookError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again", file=sys.stderr)
        return 130
    print(f"the book ({args.edition} edition of run {name!r}): {index}")
    return 0


def _not_a_notebook(path: Path) -> str | None:
    """Why ``path`` is not a Jupyter notebook (text that is not JSON, JSON of another shape,
    a notebook that fails nbformat's schema), or ``None`` if it is one."""
    import nbformat

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "not JSON text"
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        return ("a JSON object without a list of cells" if isinstance(data, dict)
                else f"a JSON {type(data).__name__}, not an object")
    try:
        nbformat.validate(nbformat.reads(json.dumps(data), as_version=4))
    except Exception as err:  # nbformat raises schema, key and attribute errors alike
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"fails the notebook format: {first[:120]}"
    return None


def _grade(directory: str) -> int:
    """``grade``: the table of exercise outcomes; a ``*.ipynb`` that is not a notebook is
    skipped with one line on stderr (the others are graded from a folder of links to them)."""
    folder = Path(directory).expanduser()
    skipped = {p: why for p in sorted(folder.glob("*.ipynb")) if folder.is_dir()
               and (why := _not_a_notebook(p))}
    for path, why in skipped.items():
        print(f"skipped {path.name}: not a notebook ({why})", file=sys.stderr)
    try:
        with tempfile.TemporaryDirectory() as links:
            graded = folder
            if skipped:
                graded = Path(links)
                for path in folder.glob("*.ipynb"):
                    if path not in skipped:
                        (graded / path.name).symlink_to(path.resolve())
            try:
                table = exercises.grade_notebooks(graded)
            except ValueError as err:
                raise ValueError(str(err).replace(str(graded), directory)) from None
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(table.to_string(index_names=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 done, 1 error, 128 + signal stopped).

    Expected failures (bad parameters, a failing notebook, an unwritable run or figures folder,
    a run in use by another process, Ctrl-C or SIGTERM) print one message to stderr instead of
    a traceback.
    """
    args = build_parser().parse_args(argv)
    if args.command == "profiles":
        print(run.describe_profiles())
        return 0
    if args.command == "student-copies":
        try:
            written = run.write_student_copies(args.out, force=args.force)
        except (ValueError, FileExistsError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        except OSError as err:
            print(f"error: cannot write the student copies to {args.out}: {err}",
                  file=sys.stderr)
            return 1
        print(f"{len(written)} student notebooks (without solutions and lecturer notes) in "
              f"{args.out}")
        return 0
    if args.command == "grade":
        return _grade(args.dir)
    if args.command == "book":
        return _book(args)
    if args.command == "study":
        return study_cli.main(args)
    start = time.perf_counter()
    try:
        overrides = dict(run.parse_override(p) for p in args.param)
        if args.command == "train":
            paths = run.train_networks(args.profile, run_name=args.run_name,
                                       overrides=overrides, progress=not args.no_progress)
            print(f"done in {time.perf_counter() - start:.0f} s; {len(paths)} networks in "
                  f"{paths[0].parent}")
            return 0
        selection = args.notebooks.split(",") if args.notebooks is not None else None
        summary = run.run_series(args.profile, run_name=args.run_name, overrides=overrides,
                                 notebooks=selection, progress=not args.no_progress)
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM as run.Terminated
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 128 + getattr(err, "signal", signal.SIGINT)
    except run.WorkerLost as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        # TensorFlow's aborted collectives leave threads whose clean-up at interpreter exit
        # prints tracebacks; the process has nothing left to save, so it ends here
        os._exit(1)
    except (ValueError, FileNotFoundError, run.RunError, locking.RunInUse) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: {err}. Runs are written under {config.runs_root()} ($PDC_RUNS_DIR or "
              f"<project>/runs); check that it is writable and has space, then rerun the same "
              f"command.", file=sys.stderr)
        return 1
    print(f"done in {time.perf_counter() - start:.0f} s; summary: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
