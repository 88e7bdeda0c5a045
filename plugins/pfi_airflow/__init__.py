"""Airflow adapters of the PFI: hooks turning Airflow Connections into ``pfi`` clients.

This package is on Airflow's plugins path (``plugins/``). DAGs import from here and from ``pfi``;
``pfi`` never imports from here.
"""
