"""Searching a space instead of enumerating a grid (`mlp sweep --search random|tpe`).

space.py parses and checks the searched keys (pure: no torch, no Optuna); pruning.py makes the
pruners and says in words why a trial was stopped; driver.py asks Optuna for one trial whenever
an executor frees a slot and tells it each result; plots.py draws the search's figures. Optuna is
imported only here, and only once a search is asked for and its config is checked.
"""
