# Images for docker-compose.yaml, from the official Airflow 3.3.2 image. Two targets:
#
#   product (the default, last stage): Airflow and the project's pinned runtime requirements
#     (requirements.txt). dags/, plugins/ and include/ are mounted by docker-compose.yaml (or
#     copied by a site's own build). Nothing of the devkit: no Dovecot, no pfi_devkit, no SMTP relay.
#   demo: the product image plus the devkit (pfi_devkit/, the local partner servers playing the
#     DPI, the DMP and the MSSanté operator), Dovecot and the devkit's Python requirements. Used
#     only by the compose file's "demo" profile (service pfi-devkit); never deployed.
FROM apache/airflow:3.3.2-python3.11 AS base
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt

FROM base AS demo
USER root
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dovecot-imapd dovecot-lmtpd \
 && rm -rf /var/lib/apt/lists/*
USER airflow
COPY requirements-dev.txt /tmp/requirements-dev.txt
RUN pip install --no-cache-dir -r /tmp/requirements-dev.txt
# `python -m pfi_devkit` finds it from the working directory (/opt/airflow).
COPY --chown=airflow:root pfi_devkit /opt/airflow/pfi_devkit

FROM base AS product
