"""Generate the notebooks readers run outside the book, and every link that names the repository or the release.

The chapters are the MyST py:percent files notebooks/NN_topic.py; the book reads them as they are. Jupyter and
Colab render plain Markdown only, so this tool writes colab/NN_topic.ipynb, in which the book's MyST has become
what they render: citations are author-year text, equation references are the book's printed numbers, headings
carry the book's chapter and section numbers, directives are blockquotes, cross-references are links to the
published book of the same release, and cell tags only the book understands are gone.

Two values name everything: the repository (`repository.url` in book/_config.yml) and the release (`version` in
pyproject.toml). From them this tool also writes, in place:
- the first two cells of each chapter: the "Open in Colab" badge (in the first Markdown cell) and the install
  cell (the first code cell), nothing else of the chapter;
- the url, repository-code and version fields of CITATION.cff, when it exists;
- the block of README.md between `<!-- links:start -->` and `<!-- links:end -->`.

    python tools/make_notebooks.py                        write everything (what `make notebooks` runs)
    python tools/make_notebooks.py --check                exit 1, naming what is stale, if any output is not current
    python tools/make_notebooks.py --check-book DIR       compare equation and section numbers with a built book

Running it twice changes nothing the second time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import posixpath
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHAPTER_GLOB = "[0-9][0-9]_*.py"

LINKS_START = "<!-- links:start -->"
LINKS_END = "<!-- links:end -->"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_RE = re.compile(r"^# \[!\[Open In Colab\]\(" + re.escape(BADGE_IMAGE) + r"\)\]\([^)]*\)[ \t]*$")

# Cell tags that only Jupyter Book / myst-nb act on. Tags that nbval or Jupyter act on (raises-exception,
# nbval-*) are kept.
BOOK_TAGS = frozenset({
    "remove-cell", "remove-input", "remove-output", "remove-stderr", "remove-stdout",
    "hide-cell", "hide-input", "hide-output", "full-width", "margin", "output_scroll", "scroll-output",
    "scroll-input", "thebe-init", "dropdown", "skip-execution",
})

# Titles the book's theme prints for the admonition directives.
ADMONITION_TITLES = {
    "note": "Note", "tip": "Tip", "hint": "Hint", "important": "Important", "warning": "Warning",
    "caution": "Caution", "attention": "Attention", "danger": "Danger", "error": "Error", "seealso": "See also",
    "todo": "To do",
}
# Directives whose argument is their title (for the admonitions above the argument is the first line of text).
TITLED_DIRECTIVES = frozenset({
    "admonition", "dropdown", "margin", "sidebar", "topic", "tab-item", "card", "grid-item-card", "exercise",
    "solution", "proof", "prf:proof", "prf:theorem", "prf:lemma", "prf:definition",
})
# Directives that are layout only: their content is kept as it is.
LAYOUT_DIRECTIVES = frozenset({"div", "container", "tab-set", "grid", "grid-item", "card-carousel", "only"})
# Directives with nothing to show outside the book.
DROPPED_DIRECTIVES = frozenset({"toctree", "tableofcontents", "bibliography", "contents", "index"})
CODE_DIRECTIVES = frozenset({"code", "code-block", "sourcecode", "code-cell", "literalinclude"})
CODE_ROLES = frozenset({
    "code", "literal", "samp", "file", "kbd", "command", "program", "envvar", "option", "any", "obj", "func",
    "meth", "class", "mod", "attr", "data", "exc", "const", "py:obj", "py:func", "py:meth", "py:class",
    "py:mod", "py:attr", "py:data", "py:exc", "py:const",
})

FENCE_RE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,}|:{3,})[ \t]*(?:\{(?P<name>[^}\s]+)\})?[ \t]*"
                      r"(?P<arg>.*?)[ \t]*$")
TARGET_RE = re.compile(r"^[ \t]*\((?P<label>[^()\s]+)\)=[ \t]*$")
HEADING_RE = re.compile(r"^(?P<hashes>#{1,6})[ \t]+(?P<text>.*?)[ \t]*#*[ \t]*$")
MATH_TAIL_RE = re.compile(r"^[ \t]*\((?P<label>[^()\s]+)\)[ \t]*$")
# A role, or an inline code span (so that a role written inside code is left alone).
INLINE_RE = re.compile(r"\{(?P<role>[A-Za-z][\w:.+-]*)\}`(?P<content>[^`]*)`|(?P<code>`+)[^`]*?(?P=code)")
EXPLICIT_RE = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.S)
OPTION_RE = re.compile(r"^:(?P<key>[\w-]+):(?:[ \t]+(?P<value>.*))?$")
# MyST left in the Markdown of a generated notebook, for the sanity check.
LEFTOVER_FENCE_RE = re.compile(r"^[ \t]*(`{3,}|~{3,}|:{3,})[ \t]*\{")
LEFTOVER_TARGET_RE = re.compile(r"^[ \t]*\([^()\s]+\)=[ \t]*$")


class GenerationError(Exception):
    """A chapter the generator cannot convert faithfully (an unknown label or citation key, say)."""


# ---------------------------------------------------------------------------------------------------------------
# Project metadata


def make_id(text: str) -> str:
    """The HTML id docutils gives a label or term (docutils.nodes.make_id)."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    text = re.sub(r"[^a-z0-9]+", "-", text)
    return re.sub(r"^[^a-z]+|-+$", "", text)


_ACCENTS = {"`": "\u0300", "'": "\u0301", "^": "\u0302", "~": "\u0303", '"': "\u0308", "c": "\u0327",
            "v": "\u030c", "=": "\u0304", ".": "\u0307", "u": "\u0306", "H": "\u030b"}


def _latex_to_text(text: str) -> str:
    """Author names as printed: LaTeX accents ({\\`e}, \\'{e}) become characters, braces go."""
    def accent(m: re.Match) -> str:
        return unicodedata.normalize("NFC", m.group("base") + _ACCENTS[m.group("acc")])
    text = re.sub(r"\{?\\(?P<acc>[`'^~\"=.]|[cvuH](?=[{\s]))\s*\{?(?P<base>[A-Za-z])\}?\}?", accent, text)
    text = text.replace(r"\&", "&").replace("~", " ")
    return re.sub(r"[{}]", "", text).strip()


def parse_bib(text: str) -> dict[str, dict[str, str]]:
    """Entries of a BibTeX file: key -> {field: value}, for the fields a citation prints (braces balanced)."""
    entries: dict[str, dict[str, str]] = {}
    for m in re.finditer(r"@(\w+)\s*\{\s*([^,\s]+)\s*,", text):
        if m.group(1).lower() in ("comment", "string", "preamble"):
            continue
        fields: dict[str, str] = {}
        i = m.end()
        depth = 1
        while i < len(text) and depth > 0:
            fm = re.compile(r"\s*(\w[\w-]*)\s*=\s*").match(text, i)
            if not fm:
                if text[i] == "}":
                    depth = 0
                i += 1
                continue
            name, i = fm.group(1).lower(), fm.end()
            if text[i] == "{":
                level, j = 0, i
                while True:
                    level += {"{": 1, "}": -1}.get(text[j], 0)
                    j += 1
                    if level == 0:
                        break
                value, i = text[i + 1:j - 1], j
            elif text[i] == '"':
                j = text.index('"', i + 1)
                value, i = text[i + 1:j], j + 1
            else:
                vm = re.compile(r"[^,}\s]+").match(text, i)
                value, i = vm.group(0), vm.end()
            fields[name] = " ".join(value.split())
        entries[m.group(2)] = fields
    return entries


def bib_label(entry: dict[str, str]) -> tuple[str, str]:
    """(authors, year) as the book prints them: 'Name', 'A and B' or 'A et al.'."""
    people = entry.get("author") or entry.get("editor") or ""
    surnames = []
    for person in re.split(r"\s+and\s+", people):
        person = person.strip()
        if not person:
            continue
        if "," in person:
            surname = person.split(",")[0]
        else:  # "First von Last": the last word, or a braced group
            braced = re.search(r"\{[^{}]*\}\s*$", person)
            surname = braced.group(0) if braced else person.split()[-1]
        surnames.append(_latex_to_text(surname))
    if not surnames:
        names = _latex_to_text(entry.get("title", "Anonymous"))
    elif len(surnames) == 1:
        names = surnames[0]
    elif len(surnames) == 2:
        names = f"{surnames[0]} and {surnames[1]}"
    else:
        names = f"{surnames[0]} et al."
    return names, entry.get("year", "n.d.")


def read_version(pyproject: Path) -> str:
    text = pyproject.read_text(encoding="utf-8")
    try:
        import tomllib
        return tomllib.loads(text)["project"]["version"]
    except ImportError:  # Python 3.10: the one line we need
        project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S).group(1)
        return re.search(r'^version\s*=\s*"([^"]+)"', project, re.M).group(1)


@dataclass
class Chapter:
    path: Path
    number: int | None  # None: unnumbered (the preface)

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def docname(self) -> str:
        return f"notebooks/{self.stem}"


@dataclass
class Project:
    """Everything the generated files are made from."""
    root: Path
    repo_url: str
    version: str
    chapters: list[Chapter]
    bib: dict[str, dict[str, str]]
    doc_titles: dict[str, str] = field(default_factory=dict)  # front-matter docname -> title

    @property
    def org_repo(self) -> tuple[str, str]:
        m = re.fullmatch(r"https://github\.com/([^/\s]+)/([^/\s]+?)(?:\.git)?/?", self.repo_url)
        if not m:
            raise GenerationError(f"repository.url in book/_config.yml must be https://github.com/ORG/REPO, "
                                  f"not {self.repo_url!r}")
        return m.group(1), m.group(2)

    @property
    def tag(self) -> str:
        return f"v{self.version}"

    @property
    def book_url(self) -> str:
        """The published book of this release (one copy per release)."""
        org, repo = self.org_repo
        return f"https://{org.lower()}.github.io/{repo}/{self.tag}/"

    @property
    def install_spec(self) -> str:
        org, repo = self.org_repo
        return f"unlearnlib @ git+https://github.com/{org}/{repo}@{self.tag}"

    def colab_url(self, stem: str) -> str:
        org, repo = self.org_repo
        return f"https://colab.research.google.com/github/{org}/{repo}/blob/{self.tag}/colab/{stem}.ipynb"

    def raw_url(self, path: str) -> str:
        org, repo = self.org_repo
        return f"https://raw.githubusercontent.com/{org}/{repo}/{self.tag}/{path}"

    def page_url(self, docname: str, anchor: str = "") -> str:
        return f"{self.book_url}{docname}.html" + (f"#{anchor}" if anchor else "")


def load_project(root: Path = ROOT) -> Project:
    config = yaml.safe_load((root / "book" / "_config.yml").read_text(encoding="utf-8"))
    repo_url = str(config["repository"]["url"]).rstrip("/")
    version = read_version(root / "pyproject.toml")
    numbers = chapter_numbers(yaml.safe_load((root / "book" / "_toc.yml").read_text(encoding="utf-8")))
    chapters = []
    for path in sorted((root / "notebooks").glob(CHAPTER_GLOB)):
        docname = f"notebooks/{path.stem}"
        if docname not in numbers:
            raise GenerationError(f"notebooks/{path.name} is not in book/_toc.yml")
        number = numbers[docname]
        if number is not None and number != int(path.stem[:2]):
            raise GenerationError(f"book/_toc.yml makes notebooks/{path.name} chapter {number}, but its file "
                                  f"name says {int(path.stem[:2])}: chapter NN of the book must be file NN")
        chapters.append(Chapter(path, number))
    bib = {}
    for bibfile in config.get("bibtex_bibfiles", []):
        bib.update(parse_bib((root / "book" / bibfile).read_text(encoding="utf-8")))
    titles = {}
    for md in sorted((root / "book").glob("*.md")):
        m = re.search(r"^#[ \t]+(.+?)[ \t]*$", md.read_text(encoding="utf-8"), re.M)
        if m:
            titles[md.stem] = m.group(1)
    return Project(root, repo_url, version, chapters, bib, titles)


def chapter_numbers(toc: dict) -> dict[str, int | None]:
    """docname -> chapter number, as Sphinx numbers the book: numbered parts count on across parts (Jupyter
    Book's multitoc numbering), unnumbered parts get no numbers."""
    numbers: dict[str, int | None] = {}
    count = 0
    for part in toc.get("parts", [{"chapters": toc.get("chapters", []), "numbered": toc.get("numbered")}]):
        for chapter in part.get("chapters") or []:
            if "file" not in chapter:
                continue
            if part.get("numbered"):
                count += 1
                numbers[chapter["file"]] = count
            else:
                numbers[chapter["file"]] = None
    return numbers


# ---------------------------------------------------------------------------------------------------------------
# The two generated cells of each chapter


def badge_line(project: Project, stem: str) -> str:
    return f"# [![Open In Colab]({BADGE_IMAGE})]({project.colab_url(stem)})"


def install_cell(project: Project) -> str:
    """The first code cell: installs the library of this release in Colab, does nothing anywhere else."""
    return f'''\
# Colab only: install the book's library, unlearnlib, from this release of the book.
import sys

if "google.colab" in sys.modules:
    import subprocess

    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q",
         "{project.install_spec}"],
        capture_output=True, text=True,
    )
    if pip.returncode != 0:
        print(pip.stdout, pip.stderr, sep="\\n")
        raise RuntimeError(
            "pip could not install unlearnlib (its output is above): check that "
            "this Colab session is online, then run this cell again"
        )
'''


_CELL_MARKER_RE = re.compile(r"^# %%(?P<rest>.*)$")


def update_top_cells(text: str, project: Project, stem: str) -> str:
    """The chapter's text with its badge and install cell regenerated; every other line is left as it is."""
    lines = text.split("\n")
    markers = [i for i, line in enumerate(lines) if _CELL_MARKER_RE.match(line)]
    if not markers:
        raise GenerationError(f"notebooks/{stem}.py has no `# %%` cells")
    ends = {start: (markers[k + 1] if k + 1 < len(markers) else len(lines)) for k, start in enumerate(markers)}

    def kind(i: int) -> str:
        rest = _CELL_MARKER_RE.match(lines[i]).group("rest")
        return "markdown" if re.search(r"\[(markdown|md)\]", rest) else "raw" if "[raw]" in rest else "code"

    md = next((i for i in markers if kind(i) == "markdown"), None)
    code = next((i for i in markers if kind(i) == "code"), None)
    if md is None or code is None:
        raise GenerationError(f"notebooks/{stem}.py needs a Markdown cell and a code cell")
    if code < md:
        raise GenerationError(f"notebooks/{stem}.py: the first cell must be Markdown (title and badge)")

    # The install cell first (it lies after the first Markdown cell in every chapter, and editing later lines
    # first keeps the earlier line numbers valid).
    end = ends[code]
    while end - 1 > code and lines[end - 1].strip() == "":
        end -= 1
    body = install_cell(project).rstrip("\n").split("\n")
    if "google.colab" in "\n".join(lines[code + 1:end]):
        lines[code + 1:end] = body
    else:
        lines[code:code] = ["# %%", *body, ""]

    badge = badge_line(project, stem)
    found = [i for i in range(md + 1, ends[md]) if BADGE_RE.match(lines[i])]
    if found:
        lines[found[0]] = badge
    else:
        title = next((i for i in range(md + 1, ends[md]) if lines[i].startswith("# # ")), md)
        lines[title + 1:title + 1] = ["#", badge]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# MyST -> the Markdown Jupyter and Colab render


@dataclass
class Target:
    docname: str
    anchor: str
    title: str
    number: str  # "5.3" for a section, "5.1" for a figure, "" when unnumbered
    kind: str  # "section", "figure" or "exercise"


@dataclass
class Labels:
    """The cross-reference targets of the whole book, collected in a first pass."""
    equations: dict[str, tuple[str, str]] = field(default_factory=dict)  # label -> (docname, "5.3")
    targets: dict[str, Target] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)  # docname -> title


class Converter:
    """Converts the Markdown cells of one chapter, in order (numbers are counted as the cells go by)."""

    def __init__(self, project: Project, chapter: Chapter, labels: Labels, collect: bool):
        self.project = project
        self.chapter = chapter
        self.labels = labels
        self.collect = collect  # first pass: record labels, do not fail on references not yet known
        self.equations = 0
        self.sections = 0
        self.figures = 0
        self.exercises = 0
        self.pending: list[str] = []  # `(label)=` lines waiting for the element they name

    # -- numbers ------------------------------------------------------------------------------------------------
    def _number(self, n: int) -> str:
        return f"{self.chapter.number}.{n}" if self.chapter.number is not None else str(n)

    def _error(self, message: str) -> str:
        if self.collect:
            return "?"
        raise GenerationError(f"notebooks/{self.chapter.stem}.py: {message}")

    # -- blocks -------------------------------------------------------------------------------------------------
    def convert_cell(self, source: str) -> str:
        return "\n".join(self.convert_lines(source.split("\n"), top=True)).strip("\n")

    def convert_lines(self, lines: list[str], top: bool) -> list[str]:
        out: list[str] = []
        i = 0
        while i < len(lines):
            line = lines[i]
            fence = FENCE_RE.match(line)
            if fence and (fence.group("name") or not fence.group("fence").startswith(":")):
                close = self._closing(lines, i + 1, fence.group("fence"))
                body = [self._dedent(x, fence.group("indent")) for x in lines[i + 1:close]]
                if fence.group("name"):
                    block = self.directive(fence.group("name"), fence.group("arg"), body)
                    out.extend(fence.group("indent") + x if x else x for x in block)
                else:  # a plain code block: verbatim
                    out.extend(lines[i:close + 1])
                i = close + 1
                continue
            target = TARGET_RE.match(line)
            if target:
                self.pending.append(target.group("label"))
                i += 1
                continue
            if line.lstrip().startswith("$$"):
                consumed, block = self.display_math(lines, i)
                if consumed:
                    out.extend(block)
                    i += consumed
                    continue
            heading = HEADING_RE.match(line)
            if heading and top:
                out.append(self.heading(len(heading.group("hashes")), heading.group("text")))
                i += 1
                continue
            if re.match(r"^%", line):  # a MyST comment
                i += 1
                continue
            if line.strip():
                self._flush_targets(kind="section", title="", number="")
            out.append(self.inline(line))
            i += 1
        return out

    @staticmethod
    def _closing(lines: list[str], start: int, fence: str) -> int:
        for j in range(start, len(lines)):
            stripped = lines[j].strip()
            if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
                return j
        return len(lines)

    @staticmethod
    def _dedent(line: str, indent: str) -> str:
        return line[len(indent):] if indent and line.startswith(indent) else line

    def _flush_targets(self, kind: str, title: str, number: str, anchor: str = "") -> None:
        """Give the waiting `(label)=` targets to the element that follows them."""
        for label in self.pending:
            if self.collect:
                self.labels.targets[label] = Target(self.chapter.docname, anchor or make_id(label),
                                                    title, number, kind)
        self.pending = []

    def heading(self, level: int, text: str) -> str:
        plain = self.inline(text)
        number = ""
        if level == 1 and self.sections == 0 and self.chapter.number is not None:
            number = f"{self.chapter.number}"
            self.labels.titles.setdefault(self.chapter.docname, text)
        elif level == 1:
            self.labels.titles.setdefault(self.chapter.docname, text)
        elif level == 2 and self.chapter.number is not None:
            self.sections += 1
            number = f"{self.chapter.number}.{self.sections}"
        self._flush_targets("section", text, number)
        # The book prints Sphinx's section numbers with their suffix ". ": "5. Title", "5.3. Section".
        return "#" * level + " " + (f"{number}. " if number else "") + plain

    def display_math(self, lines: list[str], i: int) -> tuple[int, list[str]]:
        """A `$$ ... $$` block starting at line i: (lines consumed, output). A label goes; its number stays."""
        first = lines[i]
        indent = first[:len(first) - len(first.lstrip())]
        rest = first.lstrip()[2:]
        if "$$" in rest:
            j, content, tail = i, [rest[:rest.index("$$")]], rest[rest.index("$$") + 2:]
        else:
            j = i + 1
            while j < len(lines) and "$$" not in lines[j]:
                j += 1
            if j == len(lines):
                return 0, []
            last = lines[j]
            content = [rest, *lines[i + 1:j], last[:last.index("$$")]]
            tail = last[last.index("$$") + 2:]
        label = MATH_TAIL_RE.match(tail)
        if tail.strip() and not label:
            return 0, []  # `$$` inside a line of text: leave it to the renderer
        self._flush_targets("section", "", "")
        if not label:
            return j - i + 1, lines[i:j + 1]
        maths = self.label_equation(label.group("label"), "\n".join(content).strip())
        return j - i + 1, [indent + "$$", *maths.split("\n"), indent + "$$"]

    def label_equation(self, label: str, maths: str) -> str:
        """Number a labelled equation as the book does and print the number with \\tag."""
        self.equations += 1
        number = self._number(self.equations)
        if self.collect:
            if label in self.labels.equations:
                raise GenerationError(f"equation label {label!r} is used twice")
            self.labels.equations[label] = (self.chapter.docname, number)
        # Sphinx wraps an equation with a line break outside any environment in `split`; so do we, since MathJax
        # ignores a top-level \\.
        top_level = re.sub(r"\\begin\{(\w+\*?)\}.*?\\end\{\1\}", "", maths, flags=re.S)
        if "\\\\" in top_level:
            maths = "\\begin{split}\n" + maths + "\n\\end{split}"
        if re.search(r"\\begin\{(align|equation|gather|multline|flalign|alignat)\*?\}", top_level):
            return maths  # an environment that numbers itself: no \tag allowed
        # equation* says "do not number this" to renderers that number every display equation themselves
        # (jupyterlab-myst would print its own (1), (2) beside ours); MathJax and KaTeX print the \tag.
        return f"\\begin{{equation*}}\n{maths} \\tag{{{number}}}\n\\end{{equation*}}"

    def directive(self, name: str, arg: str, body: list[str]) -> list[str]:
        options, content = self._options(body)
        name = name.lower()
        if name == "math":
            self._flush_targets("section", "", "")
            maths = "\n".join(content).strip("\n")
            if options.get("label"):
                maths = self.label_equation(options["label"], maths)
            return ["$$", *maths.split("\n"), "$$"]
        if name in CODE_DIRECTIVES:
            language = arg.split()[0] if arg else options.get("language", "")
            return ["```" + language, *content, "```"]
        if name in ("figure", "image"):
            return self.figure(name, arg, options, content)
        if name in DROPPED_DIRECTIVES or name == "solution-end":
            return []
        if name == "exercise":
            return self.exercise(arg, options, content)
        if name == "solution-start":
            return self.solution(arg.strip())
        if name == "raw":
            return content if arg.strip().lower() == "html" else []
        if name in LAYOUT_DIRECTIVES:
            return self.convert_lines(content, top=False)
        if name in ("epigraph", "pull-quote", "highlights", "blockquote"):
            return self._blockquote("", self.convert_lines(content, top=False))
        title = ADMONITION_TITLES.get(name, "")
        if name in ADMONITION_TITLES and arg:
            content = [arg, *content]
        elif name in TITLED_DIRECTIVES or not title:
            title = arg or name.split(":")[-1].replace("-", " ").capitalize()
        if name == "dropdown" and not arg:
            title = "Details"
        return self._blockquote(self.inline(title), self.convert_lines(content, top=False))

    @staticmethod
    def _options(body: list[str]) -> tuple[dict[str, str], list[str]]:
        options: dict[str, str] = {}
        i = 0
        if body and body[0].strip() == "---":  # a YAML block of options
            end = next((j for j in range(1, len(body)) if body[j].strip() == "---"), None)
            if end is not None:
                loaded = yaml.safe_load("\n".join(body[1:end])) or {}
                return {str(k): str(v) for k, v in loaded.items()}, body[end + 1:]
        while i < len(body):
            m = OPTION_RE.match(body[i].strip())
            if not m:
                break
            options[m.group("key")] = (m.group("value") or "").strip()
            i += 1
        content = body[i:]
        while content and not content[0].strip():
            content = content[1:]
        while content and not content[-1].strip():
            content = content[:-1]
        return options, content

    @staticmethod
    def _blockquote(title: str, lines: list[str]) -> list[str]:
        out = [f"> **{title}**", ">"] if title else []
        out += [f"> {x}" if x.strip() else ">" for x in lines]
        return out

    def figure(self, name: str, path: str, options: dict[str, str], caption: list[str]) -> list[str]:
        url = self._file_url(path.strip())
        alt = options.get("alt", "")
        out = [f"![{alt}]({url})"]
        number = ""
        if name == "figure" and caption:
            self.figures += 1
            number = self._number(self.figures)
            text = self.convert_lines(caption, top=False)
            text[0] = f"**Fig. {number}.** " + text[0]
            out += ["", *text]
        for label in ([options["name"]] if options.get("name") else []):
            self.pending.append(label)
        self._flush_targets("figure", " ".join(caption[:1]), number)
        return out

    def exercise(self, title: str, options: dict[str, str], content: list[str]) -> list[str]:
        """An exercise (sphinx-exercise numbers them N.k, like figures): a blockquote titled as in the book."""
        self.exercises += 1
        number = self._number(self.exercises)
        heading = f"Exercise {number}" + (f" ({self.inline(title)})" if title else "")
        if options.get("label"):
            self.pending.append(options["label"])
        self._flush_targets("exercise", heading, number)
        return self._blockquote(heading, self.convert_lines(content, top=False))

    def solution(self, label: str) -> list[str]:
        """The start of a solution: its title; what follows in the notebook is the solution itself."""
        found = self.labels.targets.get(label)
        if found is None:
            return [self._error(f"a solution of {label!r}, which names no exercise")]
        return [f"**Solution to {found.title}**"]

    def _file_url(self, path: str) -> str:
        if re.match(r"^[a-z]+://", path):
            return path
        where = path[1:] if path.startswith("/") else posixpath.join("notebooks", path)
        if path.startswith("/"):
            where = posixpath.join("book", where)
        return self.project.raw_url(posixpath.normpath(where))

    # -- inline -------------------------------------------------------------------------------------------------
    def inline(self, text: str) -> str:
        def replace(m: re.Match) -> str:
            if m.group("code"):
                return m.group(0)
            return self.role(m.group("role"), m.group("content"))
        return INLINE_RE.sub(replace, text)

    def role(self, name: str, content: str) -> str:
        explicit = EXPLICIT_RE.match(content)
        text, target = (explicit.group("text"), explicit.group("target")) if explicit else ("", content)
        base = name.split(":")[0]
        if base == "cite":
            return self.cite(name, content)
        if name == "eq":
            if target not in self.labels.equations:
                return self._error(f"{{eq}}`{content}` names no labelled equation")
            docname, number = self.labels.equations[target]
            return f"[{text or f'({number})'}]({self.project.page_url(docname, 'equation-' + make_id(target))})"
        if name == "doc":
            docname = self._docname(target)
            title = self.labels.titles.get(docname) or self.project.doc_titles.get(docname)
            if title is None:
                return self._error(f"{{doc}}`{content}` names no page of the book")
            return f"[{self.inline(text or title)}]({self.project.page_url(docname)})"
        if name in ("ref", "numref"):
            found = self.labels.targets.get(target)
            if found is None:
                return self._error(f"{{{name}}}`{content}` names no label")
            url = self.project.page_url(found.docname, found.anchor)
            if name == "ref":
                shown = f"Exercise {found.number}" if found.kind == "exercise" else found.title
                return f"[{self.inline(text or shown)}]({url})"
            default = {"figure": "Fig. %s", "exercise": "Exercise %s"}.get(found.kind, "Section %s")
            shown = (text or default).replace("{number}", found.number).replace("%s", found.number)
            return f"[{self.inline(shown)}]({url})"
        if name == "term":
            return f"[{text or target}]({self.project.page_url('glossary', 'term-' + make_id(target))})"
        if name == "math":
            return f"${content}$"
        if name in ("sub", "sup"):
            return f"<{name}>{content}</{name}>"
        if name == "download":
            return f"[{text or posixpath.basename(target)}]({self._file_url(target)})"
        if name in CODE_ROLES:
            shown = text or target.lstrip("!~")
            if not text and target.startswith("~"):
                shown = shown.split(".")[-1]
            if name.split(":")[-1] in ("func", "meth") and not shown.endswith(")"):
                shown += "()"
            code = f"`{shown}`"
            full = target.lstrip("!~")
            if name not in ("code", "literal", "samp", "file", "kbd", "command", "program", "envvar", "option") \
                    and full.startswith("unlearnlib"):
                return f"[{code}]({self.project.page_url('api', full)})"
            return code
        return text or content  # abbr and any other role: its text

    def cite(self, name: str, content: str) -> str:
        keys = [k.strip() for k in content.split(",") if k.strip()]
        parts = []
        url = self.project.page_url("bibliography")
        for key in keys:
            if key not in self.project.bib:
                return self._error(f"{{cite}}`{key}` is not in book/references.bib")
            parts.append(bib_label(self.project.bib[key]))
        # The book's author-year style: [Name et al., 2025] in parentheses form, Name et al. [2025] in text form.
        variant = name.partition(":")[2]
        if variant in ("t", "ts", "ct", "cts"):
            return ", ".join(f"{names} [[{year}]({url})]" for names, year in parts)
        if variant in ("author", "authors", "cauthor"):
            return ", ".join(f"[{names}]({url})" for names, _ in parts)
        if variant == "year":
            return ", ".join(f"[{year}]({url})" for _, year in parts)
        if variant == "yearpar":
            return "[" + "; ".join(f"[{year}]({url})" for _, year in parts) + "]"
        return "[" + "; ".join(f"[{names}, {year}]({url})" for names, year in parts) + "]"

    def _docname(self, target: str) -> str:
        target = re.sub(r"\.(md|py|ipynb)$", "", target)
        if target.startswith("/"):
            return posixpath.normpath(target[1:])
        return posixpath.normpath(posixpath.join(posixpath.dirname(self.chapter.docname), target))


# ---------------------------------------------------------------------------------------------------------------
# Notebooks


def read_chapter(text: str) -> dict:
    return jupytext.reads(text, fmt="py:percent")


def _cell_id(source: str, seen: set[str]) -> str:
    """A stable id from the cell's text, so that regenerating an unchanged cell keeps its id."""
    base = hashlib.sha1(source.encode("utf-8")).hexdigest()[:8]
    cell_id, n = base, 1
    while cell_id in seen:
        cell_id, n = f"{base}-{n}", n + 1
    seen.add(cell_id)
    return cell_id


def _lines(source: str) -> list[str]:
    return source.splitlines(keepends=True)


def convert_notebook(notebook, converter: Converter) -> dict:
    """The Colab / Jupyter notebook of one chapter, as nbformat 4 JSON."""
    cells = []
    seen: set[str] = set()
    for cell in notebook.cells:
        tags = list(cell.metadata.get("tags", []))
        if "remove-cell" in tags:
            continue
        # A solution the book does not execute (too slow for a build) is not executed by nbval either.
        tags = [t for t in tags if t not in BOOK_TAGS] + (["nbval-skip"] if "skip-execution" in tags else [])
        metadata = {"tags": tags} if tags else {}
        if cell.cell_type == "markdown":
            source = converter.convert_cell(cell.source)
            if not source.strip():  # a cell of book-only markup (the end of a solution, say): nothing to show
                continue
            cells.append({"cell_type": "markdown", "id": _cell_id(source, seen), "metadata": metadata,
                          "source": _lines(source)})
        elif cell.cell_type == "code":
            cells.append({"cell_type": "code", "execution_count": None, "id": _cell_id(cell.source, seen),
                          "metadata": metadata, "outputs": [], "source": _lines(cell.source)})
        else:
            cells.append({"cell_type": "raw", "id": _cell_id(cell.source, seen), "metadata": metadata,
                          "source": _lines(cell.source)})
    kernelspec = dict(notebook.metadata.get("kernelspec") or
                      {"display_name": "Python 3", "language": "python", "name": "python3"})
    return {
        "cells": cells,
        "metadata": {"colab": {"toc_visible": True}, "kernelspec": kernelspec,
                     "language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def dump_notebook(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def leftovers(markdown: str) -> list[str]:
    """MyST the notebook renderers would show as raw text: roles, directive fences, `(label)=` targets. Code
    (fenced blocks and inline code spans) may show MyST syntax on purpose and is not searched."""
    found = []
    fenced = ""
    for line in markdown.split("\n"):
        line = re.sub(r"^(?:[ \t]*>)+[ \t]?", "", line)  # inside a blockquote, as the renderers read it
        fence = re.match(r"^[ \t]*(`{3,}|~{3,})", line)
        if fenced:
            if fence and line.strip() and set(line.strip()) == {fenced[0]} and len(line.strip()) >= len(fenced):
                fenced = ""
            continue
        if fence and "{" not in line:
            fenced = fence.group(1)
            continue
        if LEFTOVER_FENCE_RE.match(line):
            found.append(f"directive {line.strip()!r}")
        if LEFTOVER_TARGET_RE.match(line):
            found.append(f"label target {line.strip()!r}")
        found += [f"role {m.group(0)!r}" for m in INLINE_RE.finditer(line) if m.group("role")]
    return found


# ---------------------------------------------------------------------------------------------------------------
# Everything at once


def chapter_sources(project: Project) -> dict[Path, str]:
    """The chapters' texts with their two generated cells current."""
    return {ch.path: update_top_cells(ch.path.read_text(encoding="utf-8"), project, ch.stem)
            for ch in project.chapters}


def collect_labels(project: Project, sources: dict[Path, str]) -> Labels:
    labels = Labels()
    for chapter in project.chapters:
        notebook = read_chapter(sources[chapter.path])
        converter = Converter(project, chapter, labels, collect=True)
        for cell in notebook.cells:
            if cell.cell_type == "markdown" and "remove-cell" not in cell.metadata.get("tags", []):
                converter.convert_cell(cell.source)
    return labels


def generate(project: Project) -> dict[Path, str]:
    """Every generated file: path -> its text."""
    sources = chapter_sources(project)
    labels = collect_labels(project, sources)
    out: dict[Path, str] = dict(sources)
    for chapter in project.chapters:
        converter = Converter(project, chapter, labels, collect=False)
        nb = convert_notebook(read_chapter(sources[chapter.path]), converter)
        problems = leftovers("\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"))
        if problems:
            raise GenerationError(f"colab/{chapter.stem}.ipynb would show MyST as text: {problems[0]}")
        out[project.root / "colab" / f"{chapter.stem}.ipynb"] = dump_notebook(nb)
    citation = project.root / "CITATION.cff"
    if citation.exists():
        out[citation] = update_citation(citation.read_text(encoding="utf-8"), project)
    readme = project.root / "README.md"
    if readme.exists():
        out[readme] = update_readme(readme.read_text(encoding="utf-8"), project)
    return out


def citation_fields(project: Project) -> dict[str, str]:
    return {"version": project.version, "repository-code": project.repo_url, "url": project.book_url}


def update_citation(text: str, project: Project) -> str:
    """CITATION.cff with its top-level url, repository-code and version fields set (other lines untouched)."""
    values = citation_fields(project)

    def replace(m: re.Match) -> str:
        return f'{m.group(1)}: "{values[m.group(1)]}"'
    return re.sub(r"^(version|repository-code|url):.*$", replace, text, flags=re.M)


def readme_block(project: Project) -> str:
    colab = " · ".join(f"[{ch.stem[:2]}]({project.colab_url(ch.stem)})" for ch in project.chapters)
    return "\n".join([
        LINKS_START,
        "<!-- Written by `make notebooks` from book/_config.yml and pyproject.toml: edit those, not this. -->",
        f"**Read the book** (release {project.tag}): <{project.book_url}>",
        "",
        f"**Run a chapter in Colab:** {colab}",
        "",
        "**Install the library alone:**",
        "",
        "```bash",
        f'pip install "{project.install_spec}"',
        "```",
        LINKS_END,
    ])


def update_readme(text: str, project: Project) -> str:
    start, end = text.find(LINKS_START), text.find(LINKS_END)
    if start < 0 or end < start:
        return text
    return text[:start] + readme_block(project) + text[end + len(LINKS_END):]


def stale(project: Project) -> list[str]:
    """Generated files that differ from what `make notebooks` writes, and orphan notebooks in colab/."""
    found = []
    for path, text in generate(project).items():
        rel = path.relative_to(project.root).as_posix()
        if not path.exists():
            found.append(f"{rel} (missing)")
        elif path.suffix == ".ipynb":
            if normalise(json.loads(path.read_text(encoding="utf-8"))) != normalise(json.loads(text)):
                found.append(rel)
        elif path.read_text(encoding="utf-8") != text:
            found.append(rel)
    stems = {ch.stem for ch in project.chapters}
    found += [f"colab/{p.name} (no notebooks/{p.stem}.py)" for p in sorted((project.root / "colab").glob("*.ipynb"))
              if p.stem not in stems]
    return found


def normalise(nb: dict) -> dict:
    """A notebook without its cell ids and with sources as strings: what must match."""
    cells = []
    for cell in nb["cells"]:
        cell = {k: v for k, v in cell.items() if k != "id"}
        if isinstance(cell.get("source"), list):
            cell["source"] = "".join(cell["source"])
        cells.append(cell)
    return {"cells": cells, "metadata": nb["metadata"], "nbformat": nb["nbformat"]}


def write(project: Project) -> list[str]:
    changed = []
    (project.root / "colab").mkdir(exist_ok=True)
    stems = {ch.stem for ch in project.chapters}
    for orphan in (project.root / "colab").glob("*.ipynb"):
        if orphan.stem not in stems:
            orphan.unlink()
            changed.append(f"removed {orphan.relative_to(project.root).as_posix()}")
    for path, text in generate(project).items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path.relative_to(project.root).as_posix())
    return changed


# ---------------------------------------------------------------------------------------------------------------
# Against a built book


def book_numbers(html: str) -> tuple[dict[str, str], list[str]]:
    """From a chapter's HTML page: equation label -> printed number, and the numbers of its h1/h2 headings."""
    equations = {m.group(1): m.group(2) for m in re.finditer(
        r'id="equation-([^"]+)"[^>]*>\s*<span class="eqno">\(([^)]*)\)', html)}
    headings = []
    for m in re.finditer(r"<h([12])[^>]*>(.*?)</h\1>", html, re.S):
        text = re.sub(r"<[^>]+>", "", m.group(2)).strip()
        number = re.match(r"^(\d+(?:\.\d+)*)\.\s", text)
        headings.append(number.group(1) if number else "")
    return equations, headings


def check_book(project: Project, html_dir: Path) -> list[str]:
    """Differences between the numbers in the generated notebooks and in a built book."""
    sources = chapter_sources(project)
    labels = collect_labels(project, sources)
    problems = []
    for chapter in project.chapters:
        page = html_dir / "notebooks" / f"{chapter.stem}.html"
        if not page.exists():
            problems.append(f"{page} is missing")
            continue
        built_eqs, built_heads = book_numbers(page.read_text(encoding="utf-8"))
        ours_eqs = {make_id(label): number for label, (doc, number) in labels.equations.items()
                    if doc == chapter.docname}
        if built_eqs != ours_eqs:
            diff = sorted(set(built_eqs.items()) ^ set(ours_eqs.items()))
            problems.append(f"{chapter.stem}: equation numbers differ from the book's: {diff[:4]}")
        nb = convert_notebook(read_chapter(sources[chapter.path]),
                              Converter(project, chapter, labels, collect=False))
        ours_heads = []
        for cell in nb["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            # Headings outside fenced blocks (the converter numbered exactly those).
            fenced = False
            for line in "".join(cell["source"]).split("\n"):
                if re.match(r"^\s*(`{3,}|~{3,})", line):
                    fenced = not fenced
                m = None if fenced else re.match(r"^(#{1,2})\s+(\d+(?:\.\d+)*)\.\s", line)
                if m or (not fenced and re.match(r"^#{1,2}\s", line)):
                    ours_heads.append(m.group(2) if m else "")
        built = [h for h in built_heads if h]
        ours = [h for h in ours_heads if h]
        if built != ours:
            problems.append(f"{chapter.stem}: section numbers differ from the book's: book {built[:6]}..., "
                            f"notebook {ours[:6]}...")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale generated files (exit 1)")
    parser.add_argument("--check-book", metavar="HTML_DIR", type=Path,
                        help="compare the equation and section numbers with a built book's HTML")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        project = load_project(args.root)
        if args.check_book:
            problems = check_book(project, args.check_book)
            if problems:
                print("error: " + "; ".join(problems), file=sys.stderr)
                return 1
            print(f"the notebooks' equation and section numbers equal the book's ({len(project.chapters)} "
                  "chapters)")
            return 0
        if args.check:
            found = stale(project)
            if found:
                print(f"error: stale generated files, run `make notebooks`: {', '.join(found)}", file=sys.stderr)
                return 1
            return 0
        changed = write(project)
        print(f"wrote {', '.join(changed)}" if changed else "everything is current")
        return 0
    except GenerationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
