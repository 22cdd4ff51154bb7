"""Running the pipeline: the stage contracts the components call, the content-keyed resume cache,
multi-node job submission, the local runner with its live view and summary."""
