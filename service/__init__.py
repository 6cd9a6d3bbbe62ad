"""HTTP service, storage, jobs and the `strideflow` command line."""
