"""The registry stage: the model directory (contract "model directory"), resolving model references
(`models:/`, `runs:/`, directories), MLflow tracking, registered versions and their aliases, and the
promotion gate."""
