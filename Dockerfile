# Image for docker-compose.yaml: the official Airflow 3.3.2 image with the project's pinned
# requirements and Dovecot (for the devkit's local MSSanté stand-in).
FROM apache/airflow:3.3.2-python3.11
USER root
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dovecot-imapd dovecot-lmtpd \
 && rm -rf /var/lib/apt/lists/*
USER airflow
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt
