"""Emulation of the OpenShift Image Registry Operator (see ../operator.py and operator-facts.md).

Pure parts: `bootstrap`, `conditions`, `storage` (drivers' decisions), `resources` (desired objects).
The reconcile loop lives in `controller` (imports `localcluster.client`)."""
