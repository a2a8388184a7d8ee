"""Adapters: map a real export onto the data contract (``playbook/data/contract.py``).

An adapter reads a source in its own shape and returns the contract tables as pandas frames,
with a report of every row it kept or dropped and why, and writes them as a folder source with
its ``shop.yaml`` (the shop's name, currency and clock). The playbook itself never changes for
a new source: only an adapter is written, and its assumptions are stated in its docstring.
``playbook adapt <name> SOURCE OUT`` runs one.

* ``playbook.adapters.online_retail``: the UCI Online Retail transactions (2010-2011),
  cancellations mapped to returns (``playbook adapt online-retail``).
"""
