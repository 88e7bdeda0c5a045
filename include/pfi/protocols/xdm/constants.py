"""The IHE XDM media layout (ITI TF-2b §3.32.4.1): the names inside an ``IHE_XDM.ZIP``.

One named constant each, no logic. The ebRIM identifiers of the ``METADATA.XML`` it carries are
XDS's (:mod:`pfi.protocols.xds.ebrim`).
"""

# --- Folders and files -------------------------------------------------------------------------
XDM_ROOT = "IHE_XDM"
METADATA_NAME = "METADATA.XML"
INDEX_NAME = "INDEX.HTM"
README_NAME = "README.TXT"
DEFAULT_SUBSET = "SUBSET01"
