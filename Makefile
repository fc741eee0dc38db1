# The commands the README names. Everything runs from the project's own virtual environment, .venv, created from
# the exact pins in requirements.txt on first use.
#
#   make book       execute every chapter and build the HTML book into book/_build/html
#   make test       everything CI checks: unit tests, every notebook under nbval, the book build
#   make lab        open the chapters in JupyterLab (the .py chapters open as notebooks)
#   make notebooks  regenerate colab/*.ipynb, the badges and install cells, and the links from the chapters
#   make bench      a small benchmark run (JSON into results/)
#   make assignments        the student notebooks and otter-grader autograders of every chapter (build/assignments)
#   make book-student       the book without solutions (after `make book`; no chapter is re-executed)
#   make book-instructor    the book with every solution, the quiz answers and the autograders (after `make book`)
#   make clean      remove build products (keeps .venv; `make distclean` removes it too)

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JB     := $(VENV)/bin/jupyter-book

# The chapters: notebooks/NN_topic.py (MyST in py:percent) are the only source. colab/NN_topic.ipynb are generated
# from them by tools/make_notebooks.py (for Colab, plain Jupyter and nbval) and committed, never edited by hand;
# notebooks/NN_topic.ipynb are JupyterLab's local pairs of the .py files (outputs included) and never committed.

# Tests run headless and, unless the caller says otherwise, with the small CPU profile.
TEST_PROFILE ?= ci

# $(call timed,LABEL,COMMAND): run COMMAND, then print how long it took; the exit status is COMMAND's.
timed = start=$$(date +%s); rc=0; $(2) || rc=$$?; echo "==> $(1): $$(( $$(date +%s) - start )) s (exit $$rc)"; exit $$rc

.PHONY: help venv notebooks test test-unit test-notebooks book lab bench clean distclean assignments \
	book-student book-instructor test-editions

help:
	@echo "make book       execute every chapter, build the HTML book (book/_build/html)"
	@echo "make test       unit tests + every notebook under nbval + the book build (what CI runs)"
	@echo "make lab        JupyterLab on notebooks/ (a .py chapter opens as a notebook)"
	@echo "make notebooks  regenerate colab/*.ipynb, badges, install cells and links from notebooks/*.py"
	@echo "make bench      benchmark: digits, forget class 3, 3 seeds -> results/bench_class3.json"
	@echo "make assignments      student notebooks + otter autograders per chapter -> build/assignments"
	@echo "make book-student     the book without solutions (after make book) -> book/_build/student"
	@echo "make book-instructor  every solution, quiz answers, autograders (after make book) -> book/_build/instructor"
	@echo "make clean      remove build products"

# ---------------------------------------------------------------------------------------------------------------
# Environment
venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -r requirements.txt
	$(VENV)/bin/pip install --no-deps -e .
	touch $@

# ---------------------------------------------------------------------------------------------------------------
# Notebooks: tools/make_notebooks.py turns the chapters' MyST into the plain Markdown Jupyter and Colab render
# (colab/*.ipynb), and writes every link that names the repository or the release: the badge and the install cell
# at the top of each chapter, CITATION.cff's url and version, README's links block. Cell ids come from the cells'
# text, so regenerating unchanged cells gives quiet git diffs. tests/test_notebooks_sync.py checks it is current.
notebooks: $(STAMP)
	$(PY) tools/make_notebooks.py

# ---------------------------------------------------------------------------------------------------------------
# Tests. pytest's exit status is kept as is: 5 (nothing collected) fails the build like any other failure.
#
# One torch thread per process: the book's models are tiny, so a second thread buys little, and two processes
# with two threads each on a 2-core machine oversubscribe it (OpenMP threads spin while waiting) and run several
# times slower. The notebooks under nbval and the book build each execute every chapter; they do not depend on
# each other, so `make test` runs them side by side (make -j2), one core each, and prints each one's output when
# it is done. The trained models they share are cached on disk with atomic writes, so this is safe.
test: export MPLBACKEND := Agg
test: export UNLEARN_PROFILE ?= $(TEST_PROFILE)
test: export OMP_NUM_THREADS ?= 1
test: $(STAMP)
	@echo "==> make test (UNLEARN_PROFILE=$$UNLEARN_PROFILE, OMP_NUM_THREADS=$$OMP_NUM_THREADS)"
	@$(call timed,unit tests,$(MAKE) --no-print-directory test-unit)
	@$(call timed,notebooks under nbval and the book build (side by side),$(MAKE) --no-print-directory -j2 --output-sync=target test-notebooks book)
	@$(call timed,the student and instructor editions (side by side),$(MAKE) --no-print-directory -j2 --output-sync=target test-editions)

# (a) unit tests, including tests/test_notebooks_sync.py, which proves the committed .ipynb files are current.
test-unit: export MPLBACKEND := Agg
test-unit: export UNLEARN_PROFILE ?= $(TEST_PROFILE)
test-unit: $(STAMP)
	$(PY) -m pytest tests

# (b) execute every committed notebook, as a Colab or Jupyter reader gets it (colab/*.ipynb); a cell that raises
# fails the run (outputs are not compared: the chapters check their claims with asserts).
test-notebooks: export MPLBACKEND := Agg
test-notebooks: export UNLEARN_PROFILE ?= $(TEST_PROFILE)
test-notebooks: $(STAMP)
	@$(call timed,notebooks under nbval,$(PY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=900 -p no:cacheprovider colab/)

# (c) the book. Always from a clean _build (an incremental build of unchanged sources passes even when it
# should fail); -W turns warnings into errors, -n reports every unresolved reference, and
# nb_execution_raise_on_error in book/_config.yml makes a failing cell fail the build.
# MPLBACKEND is removed for this step: set to Agg, it would stop the kernel from showing figures inline, and
# the book would have no figures.
book: $(STAMP)
	rm -rf book/_build
	@$(call timed,book build,env -u MPLBACKEND $(JB) build book -W -n --keep-going)

# ---------------------------------------------------------------------------------------------------------------
# The course edition (book/instructor.md). Exercises, solutions, graded functions, their tests and the quizzes live
# in the chapters' sources; everything else is generated from them. The two other editions reuse the reader's
# executed chapters (book/_build/jupyter_execute), so they come after `make book` and execute nothing.
assignments: $(STAMP)
	@$(call timed,assignments,$(PY) tools/make_assignments.py)

book-student: $(STAMP)
	@$(call timed,student edition,$(PY) tools/make_editions.py student)

book-instructor: $(STAMP) assignments
	@$(call timed,instructor edition,$(PY) tools/make_editions.py instructor)

# What `make test` checks of the editions once the book is built: both build without warnings.
test-editions: book-student book-instructor

# ---------------------------------------------------------------------------------------------------------------
# JupyterLab opens a .py chapter as a notebook on double-click (jupytext's viewer made the default for Python files
# by tools/lab-overrides.json, installed as this environment's settings overrides) and pairs it with
# notebooks/NN_topic.ipynb (notebooks/jupytext.toml), which keeps the outputs; jupyterlab-myst renders the MyST.
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.json

$(LAB_OVERRIDES): tools/lab-overrides.json $(STAMP)
	mkdir -p $(dir $@)
	cp $< $@

lab: $(STAMP) $(LAB_OVERRIDES)
	$(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/

bench: $(STAMP)
	mkdir -p results
	$(PY) -m unlearnlib.bench --dataset digits --scenario class --forget-class 3 --seeds 3 \
		--out results/bench_class3.json

clean:
	rm -rf book/_build .pytest_cache build/assignments build/edition-student build/edition-instructor
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name .ipynb_checkpoints \) -type d -print \
		| xargs rm -rf

distclean: clean
	rm -rf $(VENV) *.egg-info
