"""Flows layer: the orchestration of the protocols over the ledger, one module per flow.

Intake (claim, evaluate, acknowledge) and reading back the archived original, the delivery queue
runner, DMP delivery, MSSanté delivery, the producer's business acknowledgements (ZAM), the MLLP
inlet, the operator's operations (hold, release, status) and the operator console's (search,
timeline, replay with lineage, the operators' trail, the indicators dashboard). The faces (CLI,
Airflow hooks and DAGs) call into this layer; it never imports them.
"""
