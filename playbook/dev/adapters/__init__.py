"""Adapters: map a real export onto the data contract (``playbook/contract.py``).

An adapter reads a source in its own shape and returns the contract tables as pandas frames,
with a report of every row it kept or dropped and why. The playbook itself never changes for
a new source: only an adapter is written, and its assumptions are stated in its docstring.

* ``playbook.dev.adapters.online_retail``: the UCI Online Retail transactions (2010-2011),
  cancellations mapped to returns.
"""
