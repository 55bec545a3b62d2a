"""Open the built book in headless Chromium and check what a reader sees, with no network.

    python tests/browser/check_book.py [HTML_DIR] [--screenshots DIR]

(``make book-check`` runs it on ``book/_build/html``.) Every page is opened from disk
(``file://``) in a browser whose every network request fails, and must show no console error,
load every image (``naturalWidth > 0``), typeset every formula (MathJax's output elements,
no ``$$`` or ``\\(`` left in the text) and request nothing from the web. Next/previous
navigation must lead from the landing page through the six lessons in order and back, and the
search page must find "distance correlation". One screenshot per page goes to ``--screenshots``
(default: ``screenshots/`` beside HTML_DIR).

It needs Chromium and its driver (Debian: ``apt-get install chromium chromium-driver``) and
selenium (the ``dev`` extra). Exit status: 0 all checked and right, 1 problems found (each
listed), 2 not checked because something it needs is missing (it says what and how to install
it).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

# MathJax resolves ``startup.promise`` once every formula on the page is typeset
_TYPESET = """
const done = arguments[arguments.length - 1];
const mathjax = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
(mathjax || Promise.resolve()).then(() => done(true), (err) => done(String(err)));
"""

# images below the fold may be lazy: load them all, then report those that did not load
_IMAGES = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
images.forEach((img) => { img.loading = "eager"; });
Promise.all(images.map((img) => img.complete ? null : new Promise((ok) => {
  img.addEventListener("load", ok); img.addEventListener("error", ok);
}))).then(() => done(images.filter((img) => img.naturalWidth === 0).map((img) => img.src)));
"""

_PAGE_FACTS = """
const math = document.querySelectorAll("span.math, div.math").length;
const typeset = document.querySelectorAll("mjx-container").length;
const text = document.body.innerText;
const fetched = performance.getEntriesByType("resource").map((e) => e.name)
  .filter((name) => /^(https?:|\\/\\/)/.test(name));
return {math: math, typeset: typeset, rawMath: /\\$\\$|\\\\\\(|\\\\\\[/.test(text),
        fetched: fetched, title: document.title};
"""

INSTALL_HINT = (
    "Install Chromium and its driver, e.g. on Debian or Ubuntu: `sudo apt-get install chromium "
    "chromium-driver` (or put a chromium/chromedriver pair of the same version on PATH), "
    "and selenium with `pip install -e '.[dev]'`; then run this check again.")


class NotCheckable(RuntimeError):
    """Something the check needs (Chromium, its driver, selenium, a built book) is missing."""


def start_browser():
    """Headless Chromium through Debian's chromedriver, with every network request sent to a
    proxy that does not exist (so a page that needs the web fails here as it would offline)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as err:
        raise NotCheckable(f"selenium is not installed ({err}). {INSTALL_HINT}") from err
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", driver))
                               if not p)
        raise NotCheckable(f"{missing} not found on PATH. {INSTALL_HINT}")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--window-size=1280,1000", "--proxy-server=http://127.0.0.1:9",
                     "--proxy-bypass-list=<-loopback>", "--disable-background-networking"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def pages_of(html_dir: Path) -> list[Path]:
    """The book's pages: every ``.html`` outside the ``_``-folders (static files, sources)."""
    return sorted(p for p in html_dir.rglob("*.html")
                  if not p.relative_to(html_dir).parts[0].startswith("_"))


def check_page(driver, html_dir: Path, page: Path, screenshots: Path) -> list[str]:
    """Load one page, wait for MathJax, and return its problems; save its screenshot."""
    name = page.relative_to(html_dir).as_posix()
    driver.get(page.as_uri())
    problems = []
    typeset = driver.execute_async_script(_TYPESET)
    if typeset is not True:
        problems.append(f"{name}: MathJax failed: {typeset}")
    for src in driver.execute_async_script(_IMAGES):
        problems.append(f"{name}: image {src} did not load")
    facts = driver.execute_script(_PAGE_FACTS)
    if facts["math"] and facts["typeset"] < facts["math"]:
        problems.append(f"{name}: {facts['math']} formulas, {facts['typeset']} typeset")
    if facts["rawMath"]:
        problems.append(f"{name}: the text still shows $$, \\( or \\[ (a formula not typeset)")
    for url in facts["fetched"]:
        problems.append(f"{name}: requested {url} from the network")
    for entry in driver.get_log("browser"):
        if entry["level"] == "SEVERE":
            problems.append(f"{name}: console error: {entry['message']}")
    screenshots.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(screenshots / (name.replace("/", "__")[:-5] + ".png")))
    return problems


def walk(driver, start: Path, selector: str) -> list[str]:
    """The page names (file stems) met by following the link ``selector`` from ``start``
    until a page has none (at most 100 steps)."""
    from selenium.webdriver.common.by import By

    driver.get(start.as_uri())
    seen = [start.stem]
    for _ in range(100):
        links = driver.find_elements(By.CSS_SELECTOR, selector)
        if not links:
            break
        driver.get(links[0].get_attribute("href"))
        seen.append(Path(driver.current_url.split("#")[0].split("?")[0]).stem)
    return seen


def check_navigation(driver, html_dir: Path) -> list[str]:
    """Next from the landing page meets the six lessons in order; previous from the last
    lesson meets them in reverse and returns to the landing page."""
    lessons = sorted(p.stem for p in (html_dir / "lessons").glob("[0-9][0-9]_*.html"))
    problems = []
    if len(lessons) != 6:
        problems.append(f"lessons/ holds {len(lessons)} lesson pages, not 6: {lessons}")
    forward = walk(driver, html_dir / "index.html", "a.right-next")
    if [s for s in forward if s in lessons] != lessons:
        problems.append(f"next from the landing page meets {forward}, not the lessons in order")
    backward = walk(driver, html_dir / "lessons" / f"{lessons[-1]}.html", "a.left-prev")
    if [s for s in backward if s in lessons] != lessons[::-1] or backward[-1] != "index":
        problems.append(f"previous from {lessons[-1]} meets {backward}, not the lessons in "
                        "reverse and then the landing page")
    return problems


def check_search(driver, html_dir: Path, query: str = "distance correlation") -> list[str]:
    """The search page, given ``query``, lists at least one lesson among its results."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get((html_dir / "search.html").as_uri() + "?q=" + query.replace(" ", "+"))
    try:
        WebDriverWait(driver, 30).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#search-results ul.search li")
            or "did not match" in d.find_element(By.ID, "search-results").text)
    except Exception as err:  # a time-out, or no results element at all
        return [f"search for {query!r} gave no answer within 30 s ({type(err).__name__})"]
    hits = [a.get_attribute("href") for a in driver.find_elements(
        By.CSS_SELECTOR, "#search-results ul.search li a")]
    if not any("/lessons/" in (h or "") for h in hits):
        return [f"search for {query!r} found no lesson (results: {hits})"]
    return []


def check_book(html_dir: Path, screenshots: Path) -> tuple[list[str], int]:
    """Every check on the book in ``html_dir``: (problems, number of pages opened)."""
    html_dir = html_dir.resolve()
    if not (html_dir / "index.html").is_file():
        raise NotCheckable(f"{html_dir} holds no built book (no index.html); build it with "
                           "`make book` first")
    driver = start_browser()
    try:
        pages = pages_of(html_dir)
        problems = []
        for page in pages:
            problems += check_page(driver, html_dir, page, screenshots)
        problems += check_navigation(driver, html_dir)
        problems += check_search(driver, html_dir)
    finally:
        driver.quit()
    return problems, len(pages)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html_dir", nargs="?", default="book/_build/html", type=Path)
    parser.add_argument("--screenshots", type=Path, default=None,
                        help="folder for one PNG per page (default: screenshots/ beside it)")
    args = parser.parse_args(argv)
    screenshots = args.screenshots or args.html_dir.parent / "screenshots"
    try:
        problems, count = check_book(args.html_dir, screenshots)
    except NotCheckable as err:
        print(f"browser check not run: {err}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    verdict = f"{len(problems)} problem(s)" if problems else "no problems"
    print(f"{count} pages opened in headless Chromium without network: {verdict}; "
          f"screenshots in {screenshots}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
