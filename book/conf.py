"""Sphinx configuration of the course book (``make book``).

The sources Sphinx reads are not this folder but the one ``pdc_utils.book`` stages for each
build: the pages of this folder (includes of the README and docs/), the executed notebooks of
a run under ``lessons/`` (already executed: MyST-NB never runs them), and ``_book.json``, which
says which run and edition they are and what the title is. Warnings are errors (``-W``).
"""

import json
from pathlib import Path

extensions = [
    "myst_nb",  # notebooks and MyST Markdown
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 copied into _static/: formulas render offline
    "sphinx.ext.githubpages",  # .nojekyll, so GitHub Pages serves _static/ and _images/
]

# notebooks are shown as executed by the run; the builder never runs a cell
nb_execution_mode = "off"
nb_merge_streams = True
# Markdown that cells display (generated readings) holds $...$ formulas too
nb_render_markdown_format = "myst"
# no widget manager from a CDN: a widget output falls back to its text form
nb_ipywidgets_js = {}
myst_enable_extensions = ["dollarmath", "amsmath", "substitution"]
myst_heading_anchors = 3
# the glossary, reading list and results are README sections: their pages start at "##"
suppress_warnings = ["myst.header"]

exclude_patterns = ["_repo", "**.ipynb_checkpoints"]
templates_path = ["_templates"]
html_static_path = ["_static"]
html_css_files = ["book.css"]

html_theme = "sphinx_book_theme"
html_theme_options = {
    "home_page_in_toc": False,  # the title above the navigation leads home
    "show_navbar_depth": 1,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "footer_content_items": ["run-footer.html"],
}
html_show_sphinx = False
# light or dark as the reader's system prefers (without it the theme logs a console error
# on a first visit)
html_context: dict = {"default_mode": "auto"}

# filled in from _book.json when the configuration is read (book_facts below)
project = "course"
html_title = "course"
copyright = ""
myst_substitutions: dict = {}


def book_facts(app, config) -> None:
    """Title, run and edition of this build, from the ``_book.json`` that the build step
    wrote into the staged sources; a build that was not staged stops with what to run."""
    facts_file = Path(app.srcdir) / "_book.json"
    if not facts_file.exists():
        raise RuntimeError(f"{facts_file} is missing: the book is built from staged sources; "
                           "run `make book` (or `python -m pdc_utils book`), not sphinx-build "
                           "on book/")
    facts = json.loads(facts_file.read_text(encoding="utf-8"))
    config.project = config.html_title = facts["title"]
    config.html_context["book_run"] = facts["run"]
    config.myst_substitutions["edition_note"] = facts["edition_note"]


def setup(app):
    # MathJax on every page, not only on pages with math: the navigation shows lesson titles
    # with formulas on every page
    app.set_html_assets_policy("always")
    app.connect("config-inited", book_facts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
