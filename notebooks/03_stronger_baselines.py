# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Stronger baselines
#
# PLACEHOLDER-BY-SCAFFOLDING: this chapter is being written.

# %%
print("placeholder")
