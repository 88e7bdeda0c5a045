-- The ledger has its own database, never Airflow's metadata database.
CREATE DATABASE pfi_ledger OWNER airflow;
