"""The book's Sphinx extension (``sphinx: extra_extensions`` in ``_config.yml``).

* The Binder/Colab launch buttons of executed pages open their source notebooks, since the
  executed copies are generated and not in the repository.
* Each page loads each script once (Sphinx 7.4 lists some inline scripts twice, which raises
  a JavaScript error on every page).
* MathJax is served from the book itself when ``jupyter-server-mathjax`` is installed, so
  equations render offline.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tardiff.book.runs import NOTEBOOK_RUNS


def _point_launch_buttons_at_sources(app, pagename, templatename, context, doctree):
    """The executed copies are generated (git-ignored): launch the source notebook instead."""
    run = next((r for r in NOTEBOOK_RUNS if r.page == pagename), None)
    if run is None:
        return
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if "url" in button:
                button["url"] = button["url"].replace(run.output, run.source)


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    """Keep the first of identical ``<script>`` entries.

    With Sphinx 7.4, the inline scripts that sphinx-thebe and sphinx-togglebutton add while
    reading are listed twice on every page (once with filename None, once with ""); the
    second ``const THEBE_JS_URL`` then throws "Uncaught SyntaxError: Identifier 'THEBE_JS_URL'
    has already been declared" in the browser.
    """
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, unique = set(), []
    for js in scripts:
        attributes = getattr(js, "attributes", {}) or {}
        key = (str(getattr(js, "filename", js) or ""), tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique


#: Where the bundled MathJax goes, under the HTML output's ``_static``.
MATHJAX_STATIC = "mathjax"


def bundled_mathjax() -> Path | None:
    """The MathJax 2.7 that the ``jupyter-server-mathjax`` package ships, if installed."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        return None
    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    return static if (static / "MathJax.js").is_file() else None


def _use_bundled_mathjax(app, config):
    """Load MathJax from the book itself, so equations render without internet (a local build
    opened offline showed raw LaTeX with Sphinx's default CDN copy). A ``mathjax_path`` set in
    ``_config.yml`` is left alone, and without the package the CDN default stays."""
    if bundled_mathjax() is None or "://" not in str(config.mathjax_path):
        return
    config.mathjax_path = f"{MATHJAX_STATIC}/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
    # MyST marks the page body "mathjax_ignore" and its math "math"; this is MathJax 2's form of
    # the MathJax 3 options MyST writes, so that the math, and only the math, is typeset. The
    # package ships the STIX-Web fonts only (as Jupyter's own MathJax set-up uses them).
    config.mathjax2_config = {
        "tex2jax": {
            "inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]], "processRefs": False,
            "processClass": "tex2jax_process|mathjax_process|math|output_area",
            "ignoreClass": "tex2jax_ignore|mathjax_ignore|document",
        },
        "HTML-CSS": {"availableFonts": [], "preferredFont": None, "webFont": "STIX-Web", "imageFont": None},
        "SVG": {"font": "STIX-Web"},
    }


def _copy_bundled_mathjax(app, exception):
    source = bundled_mathjax()
    if exception is not None or source is None or app.builder.format != "html":
        return
    if not str(app.config.mathjax_path).startswith(MATHJAX_STATIC + "/"):
        return
    target = Path(app.outdir) / "_static" / MATHJAX_STATIC
    if not (target / "MathJax.js").is_file():
        shutil.copytree(source, target, dirs_exist_ok=True)


def setup(app):
    """Register the page fixes (``_config.yml`` lists this module under ``sphinx: extra_extensions``)."""
    # after sphinx-book-theme's add_launch_buttons (priority 501), before the page is rendered
    app.connect("html-page-context", _point_launch_buttons_at_sources, priority=600)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    app.connect("config-inited", _use_bundled_mathjax)
    app.connect("build-finished", _copy_bundled_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
