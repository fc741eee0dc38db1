# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Preface: how to read and run this book
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/unlearn-book/unlearn-book/blob/v0.1.0/colab/00_preface.ipynb)
#
# This book is about *machine unlearning*: making a trained model forget part of its training data, the forget
# set $D_f$, without paying for a full retraining on the rest, the retain set $D_r$. Its running theme is that
# the objective that removes $D_f$ and the objective that preserves $D_r$ pull the weights in conflicting
# directions, and its running question is whether the methods that manage this conflict are better for it. The
# measurements say: on our data, only when little of the retain set is at hand, and narrowly. With every method
# tuned by the same protocol and the whole retain set, no conflict-aware method is decidedly closer to the
# retrained model than a NegGrad+ that weighs the two objectives by a fixed multiplier, in any scenario the book
# measures over ten seeds (chapter 12); with 5 % of the retain set, masked GA is, by about two points of gap
# (chapter 13); plain fine-tuning on the
# clean retain set does best at undoing wrong labels, and on the hardest forget sets the methods that protect the
# retain set most are the ones that fail to forget. Chapter 13 turns this into a decision guide and says where the evidence stops.
#
# Every chapter is a notebook you can execute. This preface explains how the chapters are organised, how to run
# them on a laptop, in Colab or on a GPU, and how one switch sizes every experiment.

# %% [markdown]
# ## How a chapter is organised
#
# Each chapter follows the same path, so that you always know where you are:
#
# 1. **The idea**, in words: what the method tries to do, and which problem of the previous chapters it answers.
# 2. **The derivation**, with numbered equations you can refer back to. When a statement comes from a paper,
#    the paper is cited; when a derivation is ours, the text says so.
# 3. **A from-scratch implementation** in the notebook itself, short enough to read in one go.
# 4. **The same function in `unlearnlib`**, the book's helper library, checked equal to the from-scratch version
#    on a small input. Later chapters call the library version, so each chapter stays short.
# 5. **An experiment** against the retrained model, the reference of every comparison.
# 6. **Figures** that show what happened.
# 7. **A summary** of what to remember.
# 8. **Exercises**, from quick checks to small projects, each labelled with its kind and an estimate of its
#    computing time, and each with a worked solution; some are graded by automatic tests, and a short quiz
#    closes the chapter.
#
# Claims about results are not just written down: the notebook checks them with `assert` statements, with
# tolerances that allow for the noise of small experiments, and averaged over several seeds where one run would
# be too noisy. Building the book executes every chapter, so a claim that stops being true breaks the build.

# %% [markdown]
# ## Running the book
#
# ### Locally
#
# From the repository root, on a machine with Python 3.10 or later:
#
# - `make book` creates a virtual environment `.venv` from `requirements.txt` on first use (a few minutes),
#   executes every chapter and writes the HTML book to `book/_build/html/index.html`.
# - `make test` runs everything the continuous integration checks: the unit tests of the library, every
#   chapter executed as a notebook, and the book build with warnings treated as errors.
# - `make lab` opens the chapters in JupyterLab. The chapters are stored as plain Python files in the
#   "percent" format (`notebooks/NN_topic.py`); JupyterLab opens them as notebooks.
#
# Everything runs offline: the default dataset is scikit-learn's handwritten digits, which ships with
# scikit-learn. Larger datasets (MNIST, Fashion-MNIST, CIFAR-10) are only downloaded when you ask for it.
#
# ### In Colab
#
# Click the "Open in Colab" badge at the top of a chapter. The first code cell of every chapter installs
# `unlearnlib` from the book's repository, and does so only when the notebook runs in Colab; on your machine,
# and in the book build, it does nothing. Colab's own PyTorch is kept.
#
# ### On a GPU
#
# Nothing in the text changes. The library picks the device on its own (`cuda` when a CUDA GPU is available,
# otherwise the CPU), and every tensor a chapter creates is placed on that device. In Colab, choose
# *Runtime > Change runtime type > GPU*.

# %% [markdown]
# ## Profiles and devices: two independent switches
#
# Two environment variables decide how a chapter runs. `UNLEARN_PROFILE` sets the *size* of every experiment:
#
# | profile | what it runs | meant for |
# |---|---|---|
# | `ci` | the digits dataset, small models, few epochs: a chapter executes in a minute or two on 2 CPU cores | laptops, CI, Colab |
# | `full` | the setting of the papers: CIFAR-10 with ResNet-18, 40 epochs, more seeds (needs CIFAR-10's files) | a machine with a CUDA GPU, when you ask for it |
# | `auto` (default) | `ci`, on every machine | everyone |
#
# `UNLEARN_DEVICE` sets *where* it runs, independently of the profile:
#
# | device | what it does |
# |---|---|
# | `auto` (default) | `cuda` when a CUDA GPU is available, the CPU otherwise |
# | `cpu` | everything on the CPU, even when a GPU is present |
# | `cuda` | the GPU, and an error if there is none |
#
# So a Colab GPU runtime executes the chapters at `ci` sizes on the GPU, and the large experiments run only
# when you ask for them: after `python -m unlearnlib.data cifar10 --download` (once, about 170 MB),
# `UNLEARN_PROFILE=full make book` builds the book with the large profile, and `UNLEARN_DEVICE=cpu jupyter lab`
# keeps everything on the CPU. Inside a notebook (in Colab, for instance), set
# the variable in a cell at the top of the notebook, before `unlearnlib` is imported, then run the chapter:
#
# ```python
# import os
# os.environ["UNLEARN_PROFILE"] = "full"  # or os.environ["UNLEARN_DEVICE"] = "cpu"
# ```
#
# Chapters never test which hardware they run on: they read their sizes from the profile and their device from
# the library. The expensive models (the original model and the retrained oracle) are trained once and cached
# on disk, in `~/.cache/unlearnlib` or in the folder that `UNLEARN_CACHE` names.
#
# ### Other machines, other rounding
#
# Two machines do not round alike. A different CPU runs different vectorised kernels (on x86, PyTorch's oneDNN
# library picks its convolution kernels by instruction set), and a GPU sums in yet another order. Every check
# in the book is therefore written with a tolerance that an error model justifies (the rounding of 32-bit
# floats, or the spread over seeds), never with the digits one machine happened to print. To see this for
# yourself, set `UNLEARN_ONEDNN=0`: `import unlearnlib` then turns oneDNN off and PyTorch falls back to its
# plain kernels, which stands in for another CPU. The book's checks pass both ways.

# %% [markdown]
# ## Notation and metrics
#
# Symbols are fixed once for the whole book on the notation page, and every metric (UA, RA, TA, MIA-Efficacy,
# the loss-based MIA, the average gap to the retrained model, run time) is defined, with its direction and the
# conventions of other codebases, on the glossary page. Both are in the "Reference" part of the table of
# contents.

# %% [markdown]
# ## Setting up
#
# The next cell is the setup cell that every chapter starts with. In Colab it installs `unlearnlib` from the
# book's repository; anywhere else it does nothing, since the library is already installed in the book's
# environment.

# %%
# Colab only: install the book's library, unlearnlib, from this release of the book.
import sys

if "google.colab" in sys.modules:
    import subprocess

    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q",
         "unlearnlib @ git+https://github.com/unlearn-book/unlearn-book@v0.1.0"],
        capture_output=True, text=True,
    )
    if pip.returncode != 0:
        print(pip.stdout, pip.stderr, sep="\n")
        raise RuntimeError(
            "pip could not install unlearnlib (its output is above): check that "
            "this Colab session is online, then run this cell again"
        )

# %% [markdown]
# Now the library itself: which profile is active, on which device the experiments will run, and whether
# oneDNN is on.

# %%
import torch

import unlearnlib
from unlearnlib import config

profile = config.get_profile()
device = config.get_device()
print(f"unlearnlib {unlearnlib.__version__}")
print(f"profile: {profile.name} ({profile.dataset}, model {profile.model}, "
      f"{profile.train_epochs} epochs, {profile.seeds} seeds)")
print(f"device:  {device}")
print(f"oneDNN:  {'on' if torch.backends.mkldnn.enabled else 'off'}")

# %% [markdown]
# ## Summary
#
# - Every chapter goes from the idea to a derivation, a from-scratch implementation, the matching library
#   function, an experiment, figures, a summary and exercises.
# - `make book` builds and executes the whole book, `make test` runs every check, `make lab` opens the chapters.
# - In Colab, the first code cell installs the library; elsewhere it does nothing.
# - `UNLEARN_PROFILE=ci|full|auto` sizes all experiments; the default, `auto`, means `ci` on every machine, and
#   `full` runs only when you ask for it.
# - `UNLEARN_DEVICE=auto|cpu|cuda` picks the device independently; `auto` uses a CUDA GPU when there is one.
# - Checks allow for the rounding of another machine; `UNLEARN_ONEDNN=0` stands in for another CPU.

# %% [markdown]
# ## Exercises
#
# The exercises practise the two switches of this preface and look up a definition in the reference pages;
# each takes a minute or so.

# %% [markdown]
# ```{exercise} Profiles
# :label: ex-00-profiles
#
# *experiment · about 1 CPU minute*
#
# Restart the kernel with `UNLEARN_PROFILE=ci` set in the environment (or run
# `import os; os.environ["UNLEARN_PROFILE"] = "ci"` before importing `unlearnlib`) and check which profile the
# cell above prints. What does it print with `UNLEARN_PROFILE=full`, and with a misspelt name?
# ```

# %% [markdown]
# ```{solution-start} ex-00-profiles
# :class: dropdown
# ```
# `ci` prints the digits dataset, the small CNN, 30 epochs and 3 seeds; `full` prints CIFAR-10 with ResNet-18
# (GroupNorm), 40 epochs and 5 seeds, the setting of the papers the book follows (its files must be present or
# downloaded once); `auto` means `ci`. A misspelt name is not silently
# replaced by a default: the library raises an error that names the valid profiles. The cell below asks
# `config.get_profile` for each name directly, which is what the setup cell does with the environment variable.

# %%
from unlearnlib.errors import UnlearnError

for name in ("ci", "full", "auto", "fulll"):
    try:
        p = config.get_profile(name)
        print(
            f"{name:5} -> {p.name} ({p.dataset}, model {p.model},"
            f" {p.train_epochs} epochs, {p.seeds} seeds)"
        )
    except UnlearnError as err:
        print(f"{name:5} -> error: {err}")

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Devices
# :label: ex-00-devices
#
# *experiment · about 1 CPU minute*
#
# Set `UNLEARN_DEVICE` to `auto`, `cpu` and `cuda` in turn (restart the kernel each time, or pass the name to
# `config.get_device`) and note the device that the setup cell reports. What happens with `cuda` on a machine
# without a CUDA GPU, and why is that better than falling back to the CPU? Does the profile change with the
# device?
# ```

# %% [markdown]
# ```{solution-start} ex-00-devices
# :class: dropdown
# ```
# On a machine without a CUDA GPU, `auto` and `cpu` both give the CPU, and `cuda` raises an error that says what
# to do instead. On a machine with one, `auto` and `cuda` give the GPU and `cpu` the CPU. An explicit request for
# a GPU that is silently served by the CPU would run every experiment many times slower without saying why, so
# the library refuses instead. The profile does not change: the two switches are independent, and a GPU runs the
# `ci` sizes unless `UNLEARN_PROFILE=full` is set. The cell below shows what this machine does.

# %%
for spec in ("auto", "cpu", "cuda"):
    try:
        print(f"{spec:4} -> {config.get_device(spec)}")
    except UnlearnError as err:
        print(f"{spec:4} -> error: {err}")
print(f"profile with the default device: {config.get_profile().name}")

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} MIA-Efficacy in the glossary
# :label: ex-00-mia-efficacy
#
# *concept · no computing*
#
# Find, in the glossary, the definition of MIA-Efficacy. Which samples does the attack train on, and why is its
# target value after random forgetting not 100?
# ```

# %% [markdown]
# ```{solution-start} ex-00-mia-efficacy
# :class: dropdown
# ```
# The attack is a support-vector classifier on one feature, the model's confidence in the true class. It is
# trained on the first $|D_t|$ samples of the retain set, labelled members, and on the whole test set, labelled
# non-members, and then applied to the forget set: MIA-Efficacy is the share of forget samples it calls
# non-members. After random forgetting the forget samples come from the same distribution as the training data,
# and the retrained model classifies most unseen samples of that distribution as confidently as its training
# samples, so the attack calls most of them members even for the retrained model. The target is therefore the
# retrained model's own value, a few percent on digits (chapter 01 measures it), not 100. Only in class-wise
# forgetting, where the retrained model has never seen the class and is unsure on all of it, is the target close
# to 100.

# %% [markdown]
# ```{solution-end}
# ```
