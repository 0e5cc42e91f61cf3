"""The services over knowledge bases (:mod:`.bases`), their documents (:mod:`.documents`) and the job queries the
CLI and the API need (:mod:`.jobs`)."""
