"""Sweeps: grid and Bayesian search over run parameters, on one machine or many.

``kaslite sweep FILE`` reads a sweep file (:mod:`kaslite.sweep.spec`), keeps
its trials in an Optuna study (:mod:`kaslite.sweep.study`, storage in
:mod:`kaslite.sweep.storage`), runs them with workers that any number of
processes or machines can join (:mod:`kaslite.sweep.worker`), and writes
``sweep_summary.csv`` and ``.json`` (:mod:`kaslite.sweep.summary`).
Optuna is the optional extra ``kaslite-core[sweep]``; nothing here imports it
(or torch) at module level.
"""
