"""The course as a website: the executed notebooks of a run, rendered as a book with Sphinx.

``python -m pdc_utils book`` (``make book``) stages the book's sources in
``<build>/src`` and runs Sphinx on them with MyST-NB and the book theme (``book/conf.py``):

- the pages of ``book/``, which only *include* parts of the README and ``docs/`` (marked in the
  README with ``<!-- book: ... -->`` comments), so the book always says what they say;
- ``lessons/``: the run's executed notebooks, shown as executed (MyST-NB never runs a cell),
  changed only for the edition: in the ``lecturer`` edition the cells tagged ``solution`` or
  ``lecturer`` are collapsed under a button; the ``student`` edition leaves them out, as the
  student copies do, and drops the verdicts of the exercise checks, which the run computed
  from the solutions;
- the students' copies of the notebooks, zipped, for download;
- ``_book.json``: the title and the run the pages come from (profile, date, machine,
  runtime), which ``conf.py`` puts in every page's footer.

Sphinx treats every warning as an error, and :func:`check_site` then reads the built HTML:
every internal link and image resolves, no page loads a script, style or font from the
network, and no formula is left as raw ``$...$``.
"""

from __future__ import annotations

import copy
import datetime as dt
import html.parser
import json
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pdc_utils import artifacts, config, run

#: The editions of the book and what each shows.
EDITIONS = {
    "lecturer": "with each solution and each note for the lecturer collapsed under a button "
                "that opens it",
    "student": "without the solutions, the notes for the lecturer and the verdicts of the "
               "exercise checks, which judged the solutions' answers",
}

#: The run ``make book`` shows when none is named; it is run first if it is missing.
DEFAULT_RUN = "quick"

#: What the book's pages include from the repository (staged under ``_repo/``).
REPOSITORY_FILES = ("README.md", "docs", "figures/readme")

#: The collapsed cells of the lecturer edition: tag -> (button to open, button to close).
COLLAPSED = {
    "solution": ("Show the solution", "Hide the solution"),
    "lecturer": ("Show the note for the lecturer", "Hide the note for the lecturer"),
}

_CHECK_CALL = re.compile(r"^\s*(check|score)\(", re.MULTILINE)
"""A cell that prints exercise verdicts: ``check(...)`` or ``score(...)`` at a line's start."""


class BookError(RuntimeError):
    """The book could not be built: Sphinx reported problems (printed above the message), or
    the built pages failed :func:`check_site` (the message lists each problem)."""


def book_dir() -> Path:
    """``<project>/book``: the book's configuration, pages and templates."""
    return config.project_root() / "book"


def default_build_dir() -> Path:
    """``<project>/book/_build``: staged sources, doctrees and ``html/``."""
    return book_dir() / "_build"


def check_edition(edition: str) -> str:
    """``edition`` if it is one of :data:`EDITIONS`, else a ``ValueError`` naming the valid
    ones and what each shows."""
    if edition not in EDITIONS:
        valid = "; ".join(f"{name} ({what})" for name, what in EDITIONS.items())
        raise ValueError(f"{edition!r} is not an edition of the book (EDITION= for make book, "
                         f"--edition for python -m pdc_utils book). Valid: {valid}")
    return edition


def missing_notebooks(run_name: str) -> list[str]:
    """The notebooks of the series that ``runs/<run>/notebooks/`` has no executed copy of
    (a ``.failed`` or ``.partial`` copy does not count)."""
    folder = config.run_dir(run_name) / "notebooks"
    return [name for name in config.NOTEBOOKS if not (folder / f"{name}.ipynb").exists()]


def complete_runs() -> list[str]:
    """The runs under ``runs/`` that hold an executed copy of every notebook of the series."""
    root = config.runs_root()
    names = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return [name for name in names
            if not name.startswith(".") and not missing_notebooks(name)]


def executed_notebooks(run_name: str) -> list[Path]:
    """The run's executed notebooks in series order, or a ``FileNotFoundError`` that names
    the missing ones, the runs that could be shown instead and how to make this one."""
    try:
        missing = missing_notebooks(run_name)
    except ValueError as err:
        raise ValueError(f"{run_name!r} cannot be the name of a run (RUN= for make book, --run "
                         f"for python -m pdc_utils book): {err}") from err
    if missing:
        folder = config.run_dir(run_name) / "notebooks"
        what = ("has none of them" if len(missing) == len(config.NOTEBOOKS)
                else f"lacks {', '.join(missing)}")
        others = complete_runs()
        instead = (f"Runs that can be shown: {', '.join(others)}." if others
                   else f"No run under {config.runs_root()} has them all yet.")
        raise FileNotFoundError(
            f"run {run_name!r} cannot be shown: the book shows the executed notebooks of a run, "
            f"and {folder} {what}. {instead} Run the series under that name with `python -m "
            f"pdc_utils run --profile PROFILE --run-name {run_name}`, or `make tutorial` for "
            f"the quick run, and build the book again.")
    folder = config.run_dir(run_name) / "notebooks"
    return [folder / f"{name}.ipynb" for name in config.NOTEBOOKS]


def _collapsed_markdown(source: str, tag: str) -> str:
    """``source`` inside a ``<details>`` element that looks like MyST-NB's hidden code cells
    (the same classes), closed until the reader opens it; MyST still renders the Markdown
    between the two HTML blocks."""
    show, hide = COLLAPSED[tag]
    return (f'<div class="cell tag_{tag} docutils container">\n'
            f'<details class="admonition hide above-input">\n'
            f'<summary aria-label="Toggle hidden content">\n'
            f'<p class="collapsed admonition-title">{show}</p>\n'
            f'<p class="expanded admonition-title">{hide}</p>\n</summary>\n\n'
            f"{source.strip()}\n\n</details>\n</div>")


def edition_notebook(notebook: Any, edition: str) -> Any:
    """A copy of an executed ``notebook`` (an ``nbformat`` node) as ``edition`` shows it.

    Lecturer: cells tagged ``solution`` or ``lecturer`` collapsed (code cells by MyST-NB's
    ``hide-cell`` tag with the button's words in the cell's ``mystnb`` metadata, Markdown
    cells in a ``<details>`` element). Student: those cells left out
    (:data:`pdc_utils.run.LECTURER_ONLY_TAGS`, as in the student copies) and the outputs of the
    cells that call ``check`` or ``score`` removed, since they judged the solutions' answers.
    In both, papermill's injected parameters are collapsed too.
    """
    check_edition(edition)
    result = copy.deepcopy(notebook)
    cells = []
    for cell in result.cells:
        tags = list(cell.get("metadata", {}).get("tags", []))
        lecturer_only = [t for t in tags if t in run.LECTURER_ONLY_TAGS]
        if edition == "student":
            if lecturer_only:
                continue
            if cell.cell_type == "code" and _CHECK_CALL.search(cell.source):
                cell.outputs = []
        elif lecturer_only:
            tag = "solution" if "solution" in lecturer_only else lecturer_only[0]
            if cell.cell_type == "code":
                show, hide = COLLAPSED[tag]
                cell.metadata["tags"] = [*tags, "hide-cell"]
                cell.metadata["mystnb"] = {"code_prompt_show": show, "code_prompt_hide": hide}
            else:
                cell.source = _collapsed_markdown(cell.source, tag)
        if "injected-parameters" in tags:
            cell.metadata["tags"] = [*tags, "hide-cell"]
            cell.metadata["mystnb"] = {"code_prompt_show": "Show the parameters the run gave",
                                       "code_prompt_hide": "Hide the parameters"}
        cells.append(cell)
    result.cells = cells
    return result


def _papermill_times(notebooks: Iterable[Any]) -> tuple[dt.datetime | None, float | None]:
    """The latest end time and the summed duration that papermill recorded in the notebooks'
    metadata (``None`` for what a notebook does not record)."""
    ends, total = [], 0.0
    for notebook in notebooks:
        record = notebook.metadata.get("papermill", {})
        try:
            ends.append(dt.datetime.fromisoformat(record["end_time"]))
            total += float(record["duration"])
        except (KeyError, TypeError, ValueError):
            return None, None
    return (max(ends) if ends else None), total


def run_facts(run_name: str, notebooks: Iterable[Any], edition: str) -> dict[str, str]:
    """What the footer says about the run the pages come from: its name, profile (from
    ``summary.md``), the date the last notebook finished and the notebooks' total runtime
    (papermill's record in each notebook), and the machine (``results/environment.json``,
    written by notebook 02). A fact the run did not record is said to be not recorded."""
    notebooks = list(notebooks)
    summary = config.run_dir(run_name) / "summary.md"
    title = summary.read_text(encoding="utf-8").partition("\n")[0] if summary.exists() else ""
    profile = re.search(r"\(profile `([^`]+)`\)", title)
    end, seconds = _papermill_times(notebooks)
    environment = config.results_dir(run_name) / "environment.json"
    try:
        env = artifacts.read_json(environment) if environment.exists() else {}
    except ValueError:
        env = {}
    machine = env.get("device", "a machine not recorded")
    tensorflow = env.get("versions", {}).get("tensorflow")
    return {
        "name": run_name,
        "profile": profile[1] if profile else "not recorded",
        "edition": edition,
        "date": (end.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if end
                 else "a date not recorded"),
        "machine": f"{machine}, TensorFlow {tensorflow}" if tensorflow else machine,
        "runtime": (f"the {len(notebooks)} notebooks took {seconds:.0f} s" if seconds is not None
                    else "the notebooks' runtime is not recorded"),
    }


def book_title() -> str:
    """The README's first heading: the course's name."""
    readme = config.project_root() / "README.md"
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    raise BookError(f"{readme} has no '# ' heading to take the book's title from")


def stage(run_name: str, edition: str, build_dir: Path) -> Path:
    """Write the sources of one build into ``build_dir/src`` (replacing an older staging) and
    return that folder: ``book/``'s pages, ``_repo/`` (what they include), ``lessons/`` (the
    run's notebooks for ``edition``), the students' copies zipped, and ``_book.json``."""
    import nbformat

    check_edition(edition)
    paths = executed_notebooks(run_name)
    src = build_dir / "src"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    for page in book_dir().rglob("*.md"):
        relative = page.relative_to(book_dir())
        if relative.parts[0].startswith("_"):
            continue
        (src / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(page, src / relative)
    root = config.project_root()
    for name in REPOSITORY_FILES:
        target = src / "_repo" / name
        if (root / name).is_dir():
            shutil.copytree(root / name, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, target)
    (src / "lessons").mkdir()
    notebooks = [nbformat.read(str(p), as_version=4) for p in paths]
    for path, notebook in zip(paths, notebooks, strict=True):
        nbformat.write(edition_notebook(notebook, edition), str(src / "lessons" / path.name))
    with tempfile.TemporaryDirectory() as copies:
        written = run.write_student_copies(Path(copies) / "notebooks")
        with zipfile.ZipFile(src / "students-notebooks.zip", "w", zipfile.ZIP_DEFLATED) as zf:
            for path in written:
                zf.write(path, f"notebooks/{path.name}")
    facts = {"title": book_title(), "run": run_facts(run_name, notebooks, edition),
             "edition_note": f"this is the {edition} edition, {EDITIONS[edition]}"}
    (src / "_book.json").write_text(json.dumps(facts, indent=1), encoding="utf-8")
    return src


def build(run_name: str = DEFAULT_RUN, edition: str = "lecturer",
          build_dir: Path | None = None) -> Path:
    """Build the book of ``run_name`` in ``edition`` into ``build_dir/html`` (default
    ``book/_build/html``, replaced whole) and check it; return its ``index.html``.

    Sphinx runs with warnings as errors (``-W --keep-going``, nitpicky ``-n``, a fresh
    environment ``-E``); a failed build raises :class:`BookError` after Sphinx has printed its
    problems, and so do pages that fail :func:`check_site`.
    """
    check_edition(edition)
    build_dir = Path(build_dir) if build_dir is not None else default_build_dir()
    src = stage(run_name, edition, build_dir)
    html_dir, doctrees = build_dir / "html", build_dir / "doctrees"
    for folder in (html_dir, doctrees):
        if folder.exists():
            shutil.rmtree(folder)
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-n", "-E",
               "-q", "-c", str(book_dir()), "-d", str(doctrees), str(src), str(html_dir)]
    if subprocess.run(command, check=False).returncode != 0:
        raise BookError(f"Sphinx could not build the book from {src} (its messages are above; "
                        "every warning counts as an error)")
    problems = check_site(html_dir)
    if problems:
        raise BookError(f"the built book in {html_dir} has {len(problems)} problem(s):\n- "
                        + "\n- ".join(problems))
    return html_dir / "index.html"


class _Page(html.parser.HTMLParser):
    """What :func:`check_site` needs from one page: the URLs it links to or loads, its ids,
    and its visible text outside code, scripts, styles and typeset math."""

    _VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
             "source", "track", "wbr"}
    _NOT_TEXT = {"code", "pre", "script", "style", "kbd", "samp", "textarea"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []  # <a href>
        self.loads: list[tuple[str, str]] = []  # (tag, URL) of what the page loads
        self.ids: set[str] = set()
        self.text: list[str] = []
        self._stack: list[bool] = []  # per open element: is its content excluded from text?

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        for key in ("id", "name"):
            if values.get(key):
                self.ids.add(values[key])
        if tag == "a" and "href" in values:
            self.links.append(values["href"])
        elif tag in ("img", "script", "source", "iframe") and values.get("src"):
            self.loads.append((tag, values["src"]))
        elif tag == "link" and values.get("href") and not {"canonical", "index", "search",
                                                           "next", "prev"} & set(
                                                               values.get("rel", "").split()):
            self.loads.append((tag, values["href"]))
        if tag not in self._VOID:
            excluded = (tag in self._NOT_TEXT or "math" in values.get("class", "").split()
                        or bool(self._stack and self._stack[-1]))
            self._stack.append(excluded)

    def handle_endtag(self, tag: str) -> None:
        if tag not in self._VOID and self._stack:
            self._stack.pop()

    def handle_data(self, data: str) -> None:
        if not (self._stack and self._stack[-1]):
            self.text.append(data)


def _is_external(url: str) -> bool:
    return urlsplit(url).scheme in ("http", "https") or url.startswith("//")


def check_site(html_dir: Path) -> list[str]:
    """Problems of the built pages in ``html_dir``, each as one sentence naming the page:
    an internal link to a missing file or anchor, an image or other loaded file that is
    missing or empty, a script, style, font or image loaded from the network (the pages must
    work offline), a ``$`` left in the text (a formula MyST did not turn into math), a
    stylesheet that imports from the network, or no search index."""
    html_dir = Path(html_dir)
    pages = {p.relative_to(html_dir).as_posix(): p for p in sorted(html_dir.rglob("*.html"))
             if not p.relative_to(html_dir).parts[0].startswith("_")}
    if "index.html" not in pages:
        return [f"{html_dir} has no index.html"]
    parsed: dict[str, _Page] = {}
    for name, path in pages.items():
        parser = _Page()
        parser.feed(path.read_text(encoding="utf-8"))
        parsed[name] = parser
    problems = []
    for name, page in parsed.items():
        for tag, url in page.loads:
            if _is_external(url):
                problems.append(f"{name} loads {url} ({tag}) from the network")
                continue
            target = _resolve(name, url)
            if target is not None and (not (html_dir / target).is_file()
                                       or (html_dir / target).stat().st_size == 0):
                problems.append(f"{name} loads {url} ({tag}), which is missing or empty")
        for url in page.links:
            if _is_external(url) or urlsplit(url).scheme:
                continue  # mailto: and the like, and the web, which is not checked offline
            parts = urlsplit(url)
            target = _resolve(name, url) if parts.path else name
            if target is None:
                continue
            if not (html_dir / target).exists():
                problems.append(f"{name} links to {url}, which does not exist")
            elif parts.fragment and target in parsed and \
                    unquote(parts.fragment) not in parsed[target].ids:
                problems.append(f"{name} links to {url}, but {target} has no such anchor")
        text = " ".join(page.text)
        for match in re.finditer(r"\$", text):
            context = text[max(0, match.start() - 30):match.end() + 30].replace("\n", " ")
            problems.append(f"{name} shows a raw '$' (a formula not typeset?): ...{context}...")
            break
    for css in sorted(html_dir.glob("_static/**/*.css")):
        if re.search(r"(@import|url\()\s*['\"]?(https?:)?//", css.read_text(errors="replace")):
            problems.append(f"{css.relative_to(html_dir)} loads something from the network")
    if not (html_dir / "searchindex.js").is_file():
        problems.append("there is no searchindex.js: search cannot work")
    return problems


def _resolve(page: str, url: str) -> str | None:
    """The path, relative to the site's root, of what ``url`` on ``page`` points to; ``None``
    for a URL that is not a file of the site (``data:``, a bare ``#fragment``)."""
    parts = urlsplit(url)
    if parts.scheme or not parts.path:
        return None
    path = unquote(parts.path)
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(page), path))
    return posixpath.join(joined, "index.html") if path.endswith("/") else joined

