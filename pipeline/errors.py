"""Errors that stop a run. Record-level problems never raise: they become reject rows."""


class PipelineError(Exception):
    """A file-level or configuration problem; the CLI prints the one-line message and exits with 2."""


class InputFileError(PipelineError):
    def __init__(self, path: object, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem

    def __reduce__(self):  # picklable (a Dask worker sends it back to the flow)
        return (type(self), (self.path, self.problem))
