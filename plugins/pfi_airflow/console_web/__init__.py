"""The operator console's web app (:mod:`pfi_airflow.console_web.app`) and its templates."""
